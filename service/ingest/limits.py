"""How large a batch may be, and how long its strings: the documented limits, defined once here.

Size limits (rows, columns, decoded bytes) are checked from a file's metadata before its data is
decoded where the format says them (Parquet footer, Arrow IPC message headers, the CSV header
and a count of its line ends), else while decoding, batch by batch, stopping at the limit. They
are refused with 413 naming the limit and its environment variable.

String limits are checked at ingest as a 422 naming the field: every string the store keeps
as metadata or lists back (model name and version, column names, classes) and the sample ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from service.errors import FieldIssue, PayloadTooLarge
from service.ingest.issues import Issues
from service.ingest.masks import ArrowColumn, combined, first_true
from service.settings import Settings

#: model name and version (``schemas.common.ModelRef`` and the store's columns hold 200)
MAX_MODEL_CHARS = 200
#: a column name (features, ``score__<class>``); the query-parameter / envelope form included
MAX_COLUMN_NAME_CHARS = 200
#: a class: label and prediction values, ``positive_class`` and each of ``classes``
MAX_CLASS_CHARS = 200
#: a sample id
MAX_SAMPLE_ID_CHARS = 200
#: a body may decode to at most this many times ``YARDSTICK_MAX_BODY_BYTES`` of Arrow data
DECODED_BYTES_PER_BODY_BYTE = 4

_DEFAULTS = Settings.model_fields


@dataclass(frozen=True)
class IngestLimits:
    """Per-batch caps; :meth:`from_settings` builds them from the service's settings."""

    max_rows: int = int(_DEFAULTS["max_rows"].default)
    max_columns: int = int(_DEFAULTS["max_columns"].default)
    max_decoded_bytes: int = DECODED_BYTES_PER_BODY_BYTE * int(_DEFAULTS["max_body_bytes"].default)

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_rows=settings.max_rows,
            max_columns=settings.max_columns,
            max_decoded_bytes=DECODED_BYTES_PER_BODY_BYTE * settings.max_body_bytes,
        )

    def check_rows(self, rows: int, *, at_least: bool = False) -> None:
        """413 when ``rows`` is over ``max_rows``; ``at_least`` when decoding stopped at the limit."""
        if rows > self.max_rows:
            count = f"more than {self.max_rows:,}" if at_least else f"{rows:,}"
            raise too_large(
                f"the batch has {count} rows; the limit is {self.max_rows:,} (YARDSTICK_MAX_ROWS)"
            )

    def check_columns(self, columns: int, *, at_least: bool = False) -> None:
        """413 when ``columns`` is over ``max_columns``; ``at_least`` when counting stopped at the limit."""
        if columns > self.max_columns:
            count = f"more than {self.max_columns:,}" if at_least else f"{columns:,}"
            limit = f"{self.max_columns:,} (YARDSTICK_MAX_COLUMNS)"
            raise too_large(f"the batch has {count} columns; the limit is {limit}")

    def check_decoded(self, nbytes: int, *, estimate: bool = False) -> None:
        if nbytes > self.max_decoded_bytes:
            how = "its metadata says it decodes to at least" if estimate else "it decodes to more than"
            raise too_large(
                f"{how} {nbytes:,} bytes; the limit is {self.max_decoded_bytes:,} "
                f"({DECODED_BYTES_PER_BODY_BYTE} x YARDSTICK_MAX_BODY_BYTES)"
            )

    def check_schema(self, schema: pa.Schema) -> None:
        """Columns (each leaf of a nested column counts) and column-name lengths, before any data."""
        self.check_columns(leaf_count(schema))
        check_column_names(schema.names)


def too_large(message: str) -> PayloadTooLarge:
    return PayloadTooLarge(message, issues=[FieldIssue("body", message)])


def leaf_count(schema: pa.Schema) -> int:
    """Columns as Parquet counts them: a nested column counts each of its leaf fields (a struct's
    fields, a list's items, a map's keys and values), recursively."""
    count = 0
    stack = [field.type for field in schema]
    while stack:
        kind = stack.pop()
        if kind.num_fields == 0:
            count += 1
        else:
            stack.extend(kind.field(i).type for i in range(kind.num_fields))
    return count


def shown(text: str, limit: int = 40) -> str:
    """A possibly huge client string, cut for a message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def check_column_names(names: Iterable[str]) -> None:
    """422 for a column name over :data:`MAX_COLUMN_NAME_CHARS`, before the data is decoded."""
    issues = Issues()
    for name in names:
        if column_name_issue(name, issues):
            break
    issues.raise_if_any()


def column_name_issue(name: str, issues: Issues) -> bool:
    """Record an issue when column ``name`` is too long (the field shows its start); true when it was."""
    if len(name) <= MAX_COLUMN_NAME_CHARS:
        return False
    field = issues.locator.field(name).replace(name, name[:40] + "...")
    issues.add(field, too_long_message("column name", name, MAX_COLUMN_NAME_CHARS))
    return True


def too_long_message(what: str, value: str, limit: int) -> str:
    return f"{what} {shown(value)} is {len(value):,} characters; the limit is {limit}"


def text_issue(value: object, field: str, limit: int, issues: Issues, *, what: str) -> bool:
    """Record an issue when the string ``value`` is over ``limit`` characters; true when it was."""
    if not isinstance(value, str) or len(value) <= limit:
        return False
    issues.add(field, too_long_message(what, value, limit))
    return True


def first_too_long(column: ArrowColumn, limit: int) -> int | None:
    """The first row of a string column longer than ``limit`` characters (vectorized)."""
    array = combined(column)
    if pa.types.is_dictionary(array.type):
        values = array.dictionary
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        long_values = pc.greater(pc.utf8_length(values), limit)
        if not pc.any(long_values).as_py():
            return None
        return first_true(pc.take(long_values, array.indices))
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)) or len(array) == 0:
        return None
    # Bytes bound characters: a column whose longest value has few enough bytes needs no count.
    if (pc.max(pc.binary_length(array)).as_py() or 0) <= limit:
        return None
    return first_true(pc.greater(pc.utf8_length(array), limit))


def decoded_nbytes(batch: pa.RecordBatch) -> int:
    """Arrow bytes of a decoded batch, counting dictionary columns of strings as if decoded.

    Canonicalization decodes dictionary sample ids and labels, so a dictionary of one long
    string repeated over many rows must count at its decoded size, not its indices'.
    """
    total = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type) and _is_binary_like(column.type.value_type):
            lengths = pc.binary_length(column.dictionary)
            total += column.indices.nbytes + 8 * len(column)
            total += int(pc.sum(pc.take(lengths, column.indices)).as_py() or 0)
        else:
            total += column.nbytes
    return total


def _is_binary_like(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )
