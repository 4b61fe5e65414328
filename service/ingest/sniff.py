"""The format of an ``application/octet-stream`` batch, told from its first and last bytes.

Clients generated from the OpenAPI document (openapi-python-client, openapi-typescript) upload a
file as ``application/octet-stream`` whatever it holds, so the body says what it is:

- Parquet starts (and ends) with ``PAR1``;
- an Arrow IPC file starts with ``ARROW1``; an Arrow IPC stream with the continuation marker
  ``FF FF FF FF`` (followed by the length of its first message);
- anything else that is UTF-8 text with a header line is CSV.

Only the body's head is looked at: the decoder of the format found checks the rest (a Parquet
file's closing ``PAR1`` and footer included), so a body that starts like Parquet but is not is a
400 from the Parquet reader.
"""

from __future__ import annotations

import codecs

import pyarrow as pa

from service.errors import FieldIssue, MalformedBody, UnsupportedMediaType
from service.ingest.media import CSV

PARQUET_MAGIC = b"PAR1"
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
#: the media types a sniffed body is decoded as
PARQUET_TYPE = "application/vnd.apache.parquet"
ARROW_FILE_TYPE = "application/vnd.apache.arrow.file"
ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
#: how much of a text body is checked for UTF-8 and a header line
_TEXT_HEAD_BYTES = 64 << 10

_ACCEPTED = (
    "application/octet-stream bodies must be Parquet (starting with PAR1), an Arrow IPC stream "
    "(starting with FF FF FF FF) or file (starting with ARROW1), or UTF-8 CSV with a header line; "
    "or name the format in Content-Type: text/csv, application/vnd.apache.parquet, "
    "application/vnd.apache.arrow.stream or application/json"
)


def sniff_batch_format(body: pa.Buffer) -> str:
    """The media type of a batch body sent as ``application/octet-stream``.

    Raises :class:`~service.errors.MalformedBody` (400) for an empty body and
    :class:`~service.errors.UnsupportedMediaType` (415) when the bytes are none of the formats.
    """
    if body.size == 0:
        message = "the body is empty; send a Parquet, Arrow IPC or CSV file"
        raise MalformedBody(detail=message, issues=[FieldIssue("body", message)])
    head: bytes = body.slice(0, min(_TEXT_HEAD_BYTES, body.size)).to_pybytes()
    if head.startswith(PARQUET_MAGIC):
        return PARQUET_TYPE
    if head.startswith(ARROW_FILE_MAGIC):
        return ARROW_FILE_TYPE
    if head.startswith(ARROW_STREAM_MAGIC):
        return ARROW_STREAM_TYPE
    if _is_csv_text(head, complete=body.size <= len(head)):
        return CSV
    detail = f"cannot tell the format of this application/octet-stream body: {_ACCEPTED}"
    raise UnsupportedMediaType(detail=detail, issues=[FieldIssue("Content-Type", _ACCEPTED)])


def _is_csv_text(head: bytes, *, complete: bool) -> bool:
    """UTF-8 without NUL bytes, with a header line: a line end, or the whole body is one line."""
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # final=False: the head may end inside a multi-byte character
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    first_line = text.split("\n", 1)[0].strip()
    return bool(first_line) and ("\n" in text or complete)
