"""Decode request bodies into one canonical Arrow table, validated column by column.

Public API:

- :func:`ingest_body` for ``POST /v1/batches`` (JSON rows/columns, CSV, Parquet, Arrow IPC);
- :func:`parse_label_update`, then :func:`merge_stored_labels` (which the store applies to the
  version it reads) for ``PUT /v1/batches/{id}/labels``; :func:`merge_labels` is its pure core;
- :func:`load_canonical` for a batch read back from storage.

The layout every batch ends in is documented in :mod:`service.canonical`.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.canonical import CanonicalBatch
from service.ingest import json_body
from service.ingest.canonicalize import canonicalize
from service.ingest.issues import Locator
from service.ingest.label_update import merge_labels, merge_stored_labels, parse_label_update
from service.ingest.limits import IngestLimits
from service.ingest.media import (
    ARROW,
    BATCH_TYPES,
    CSV,
    JSON,
    OCTET_STREAM,
    PARQUET,
    MediaType,
    parse_media_type,
)
from service.ingest.reload import load_canonical
from service.ingest.sniff import sniff_batch_format
from service.ingest.spec import spec_from_params
from service.ingest.tabular import Body, as_buffer, read_arrow, read_csv, read_parquet

__all__ = [
    "BATCH_TYPES",
    "Body",
    "CanonicalBatch",
    "IngestLimits",
    "ingest_body",
    "load_canonical",
    "merge_labels",
    "merge_stored_labels",
    "parse_label_update",
]


def ingest_body(
    body: Body, content_type: str, params: Mapping[str, str], *, limits: IngestLimits | None = None
) -> CanonicalBatch:
    """Decode and validate a batch body into a :class:`CanonicalBatch`.

    ``body`` is bytes or a :class:`pyarrow.Buffer` (a memory-mapped upload, read in place).
    ``content_type`` is the request's Content-Type (parameters such as ``charset``
    allowed); ``application/octet-stream`` is Parquet, Arrow IPC or CSV as its first bytes say.
    JSON carries its spec in the envelope and ignores ``params``; CSV,
    Parquet and Arrow take ``model``, ``version``, ``task``, ``positive_class`` and
    ``classes`` (comma-separated) from ``params``.

    Raises :class:`~service.errors.UnsupportedMediaType` (415), :class:`~service.errors.MalformedBody`
    (400) when the body cannot be decoded, :class:`~service.errors.PayloadTooLarge` (413) past
    ``limits`` (rows, columns, decoded bytes; checked before decoding where the format allows),
    and :class:`~service.errors.InvalidInput` (422) naming every offending field and its first
    offending row.
    """
    limits = limits or IngestLimits()
    media = parse_media_type(content_type, accepted=BATCH_TYPES)
    if media.essence == OCTET_STREAM:
        # Generated clients send any file this way; its magic bytes say which format it is.
        media = MediaType(sniff_batch_format(as_buffer(body)), media.params)
    if media.essence == JSON:
        table, raw_spec, locator = json_body.decode_batch(body, limits=limits)
        return canonicalize(table, raw_spec, locator, textual_labels=False)
    # The spec comes first: a bad query parameter is reported without decoding the body.
    raw_spec = spec_from_params(params)
    if media.essence == CSV:
        # Classification labels are read as text, then become int64 only if every cell is an integer.
        text = ("sample_id",) if raw_spec.task == "regression" else ("sample_id", "label", "prediction")
        table = read_csv(body, text_columns=text, charset=media.charset, limits=limits)
    elif media.essence in PARQUET:
        table = read_parquet(body, limits=limits)
    else:
        assert media.essence in ARROW
        table = read_arrow(body, limits=limits)
    return canonicalize(table, raw_spec, Locator(), textual_labels=media.essence == CSV)
