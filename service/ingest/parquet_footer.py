"""Columns and rows of a Parquet file from the start of its footer, before pyarrow parses it.

pyarrow parses a whole footer before it answers anything: for a file with 300,000 columns that
is seconds and most of a gigabyte, spent before the column limit can be checked. The footer is
a Thrift compact-protocol ``FileMetaData`` whose second field lists the schema and whose third
is the row count; this module reads just those, counting leaf columns and stopping as soon as
they pass the limit.

The format: https://github.com/apache/parquet-format/blob/master/src/main/thrift/parquet.thrift
and https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md
"""

from __future__ import annotations

import pyarrow as pa

from service.ingest.limits import IngestLimits

_MAGIC = b"PAR1"
# FileMetaData { 1: version, 2: schema list<SchemaElement>, 3: num_rows i64, ... }
_SCHEMA, _NUM_ROWS = 2, 3
# SchemaElement { 1: type (set on leaf columns only), ... }
_ELEMENT_TYPE = 1
# compact protocol types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_MAX_DEPTH = 64


class _Malformed(Exception):
    """The footer is not what the format says; pyarrow's reader reports it."""


def check_footer(buffer: pa.Buffer, limits: IngestLimits) -> None:
    """413 when the footer lists more leaf columns than ``max_columns`` or more rows than ``max_rows``.

    Says nothing about a footer it cannot read: pyarrow's reader then names the problem.
    """
    size = buffer.size
    if size < 12 or buffer.slice(size - 4, 4).to_pybytes() != _MAGIC:
        return
    length = int.from_bytes(buffer.slice(size - 8, 4).to_pybytes(), "little")
    if not 0 < length <= size - 12:
        return
    # Cast: a pyarrow buffer's memoryview has signed bytes.
    reader = _Compact(memoryview(buffer).cast("B")[size - 8 - length : size - 8])
    try:
        _check(reader, limits)
    except (_Malformed, IndexError):
        return


def _check(reader: _Compact, limits: IngestLimits) -> None:
    field_id = 0
    while True:
        header = reader.field_header(field_id)
        if header is None:
            return
        field_id, kind = header
        if field_id == _SCHEMA and kind == _LIST:
            count, element = reader.list_header()
            if element != _STRUCT:
                raise _Malformed
            leaves = 0
            for _ in range(count):
                if _element_is_leaf(reader):
                    leaves += 1
                    if leaves > limits.max_columns:
                        limits.check_columns(leaves, at_least=True)
        elif field_id == _NUM_ROWS and kind == _I64:
            limits.check_rows(reader.zigzag())
            return
        else:
            reader.skip(kind)


def _element_is_leaf(reader: _Compact) -> bool:
    leaf = False
    field_id = 0
    while True:
        header = reader.field_header(field_id)
        if header is None:
            return leaf
        field_id, kind = header
        leaf = leaf or field_id == _ELEMENT_TYPE
        reader.skip(kind)


class _Compact:
    """Just enough of the Thrift compact protocol to walk a struct and skip what it does not need."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        value = self.data[self.position]
        self.position += 1
        return int(value)

    def varint(self) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise _Malformed

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def field_header(self, last_id: int) -> tuple[int, int] | None:
        """(field id, type) of the next field of a struct, or ``None`` at its end."""
        byte = self.byte()
        if byte == 0:
            return None
        delta, kind = byte >> 4, byte & 0x0F
        return (last_id + delta if delta else self.zigzag()), kind

    def list_header(self) -> tuple[int, int]:
        byte = self.byte()
        count = byte >> 4
        if count == 15:
            count = self.varint()
        return count, byte & 0x0F

    def skip(self, kind: int, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise _Malformed
        if kind in (_TRUE, _FALSE):
            return
        if kind == _BYTE:
            self.position += 1
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.position += 8
        elif kind == _BINARY:
            length = self.varint()  # read first: ``position += varint()`` would add to the old position
            self.position += length
        elif kind in (_LIST, _SET):
            count, element = self.list_header()
            for _ in range(count):
                if element in (_TRUE, _FALSE):
                    self.position += 1  # a boolean in a list is a whole byte
                else:
                    self.skip(element, depth + 1)
        elif kind == _MAP:
            count = self.varint()
            if count:
                types = self.byte()
                for _ in range(count):
                    self.skip(types >> 4, depth + 1)
                    self.skip(types & 0x0F, depth + 1)
        elif kind == _STRUCT:
            field_id = 0
            while (header := self.field_header(field_id)) is not None:
                field_id, inner = header
                self.skip(inner, depth + 1)
        else:
            raise _Malformed
        if self.position > len(self.data):
            raise _Malformed
