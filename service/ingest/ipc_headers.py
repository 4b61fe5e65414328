"""Rows and decoded bytes of an Arrow IPC body, from its message headers alone.

pyarrow decompresses a whole record batch before it says how many rows the batch has, so a
few kilobytes of a compressed batch can become gigabytes before a limit can be checked. Each
message's metadata is a small flatbuffer (``Message.fbs``) that already says the batch's row
count and where its buffers are; a compressed buffer starts with its uncompressed length. This
module reads exactly those fields, so the limits are checked before any body is decoded.

The format: https://arrow.apache.org/docs/format/Columnar.html#serialization-and-interprocess-communication-ipc
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa

_FILE_MAGIC = b"ARROW1"
# Message.header union tags (Message.fbs: union MessageHeader { Schema, DictionaryBatch, RecordBatch, ... })
_DICTIONARY_BATCH = 2
_RECORD_BATCH = 3
# Field ids: Message { version, header_type, header, bodyLength }, RecordBatch { length, nodes,
# buffers, compression }, DictionaryBatch { id, data, isDelta }, Footer { version, schema,
# dictionaries, recordBatches }.
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER = 1, 2
_BATCH_LENGTH, _BATCH_BUFFERS, _BATCH_COMPRESSION = 0, 2, 3
_DICTIONARY_DATA = 1
_FOOTER_DICTIONARIES, _FOOTER_RECORD_BATCHES = 2, 3
_BUFFER_STRUCT = 16  # struct Buffer { offset: long; length: long }
_BLOCK_STRUCT = 24  # struct Block { offset: long; metaDataLength: int; (pad); bodyLength: long }


@dataclass(frozen=True)
class Totals:
    rows: int
    decoded_bytes: int


def stream_totals(buffer: pa.Buffer) -> Totals:
    """Record-batch rows and the decoded bytes of every batch and dictionary of an IPC stream."""
    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(buffer))
    rows = decoded = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        batch_rows, batch_bytes = _message_totals(message)
        rows += batch_rows
        decoded += batch_bytes
    return Totals(rows, decoded)


def file_totals(buffer: pa.Buffer) -> Totals:
    """The same for an IPC file, over the blocks its footer lists (the ones a file reader reads)."""
    data = memoryview(buffer).cast("B")
    size = len(data)
    tail = size - len(_FILE_MAGIC) - 4
    if tail < len(_FILE_MAGIC) or bytes(data[tail + 4 :]) != _FILE_MAGIC:
        raise ValueError("no Arrow IPC file footer")
    footer_size = _unpack("<i", data, tail)
    start = tail - footer_size
    if footer_size <= 0 or start < 0:
        raise ValueError("bad Arrow IPC file footer size")
    footer = _Table.root(data[start:tail])
    rows = decoded = 0
    for field_id in (_FOOTER_DICTIONARIES, _FOOTER_RECORD_BATCHES):
        for position in footer.structs(field_id, _BLOCK_STRUCT):
            offset = _unpack("<q", footer.data, position)
            length = _unpack("<i", footer.data, position + 8) + _unpack("<q", footer.data, position + 16)
            if offset < 0 or length < 0 or offset + length > size:
                raise ValueError("an Arrow IPC file block points outside the file")
            message = pa.ipc.read_message(pa.BufferReader(buffer.slice(offset, length)))
            batch_rows, batch_bytes = _message_totals(message)
            rows += batch_rows
            decoded += batch_bytes
    return Totals(rows, decoded)


def _message_totals(message: pa.ipc.Message) -> tuple[int, int]:
    """(rows, decoded bytes) of a record batch; (0, decoded bytes) of a dictionary; else zeros."""
    root = _Table.root(memoryview(message.metadata))
    kind = root.scalar(_MESSAGE_HEADER_TYPE, "<B", 0)
    header = root.table(_MESSAGE_HEADER)
    if header is None or kind not in (_RECORD_BATCH, _DICTIONARY_BATCH):
        return 0, 0
    if kind == _DICTIONARY_BATCH:
        data = header.table(_DICTIONARY_DATA)
        return (0, 0) if data is None else (0, _batch_bytes(data, message))
    rows = header.scalar(_BATCH_LENGTH, "<q", 0)
    if rows < 0:
        raise ValueError("a record batch with a negative length")
    return rows, _batch_bytes(header, message)


def _batch_bytes(batch: _Table, message: pa.ipc.Message) -> int:
    """Bytes of the batch's buffers once decompressed (compressed buffers say so in 8 bytes)."""
    body = memoryview(message.body) if message.body is not None else memoryview(b"")
    compressed = batch.table(_BATCH_COMPRESSION) is not None
    total = 0
    for position in batch.structs(_BATCH_BUFFERS, _BUFFER_STRUCT):
        offset = _unpack("<q", batch.data, position)
        length = _unpack("<q", batch.data, position + 8)
        if offset < 0 or length < 0 or offset + length > len(body):
            raise ValueError("a record batch buffer points outside the message body")
        if not compressed or length == 0:
            total += length
            continue
        if length < 8:
            raise ValueError("a compressed buffer shorter than its length prefix")
        uncompressed = _unpack("<q", body, offset)
        total += length - 8 if uncompressed == -1 else uncompressed
        if uncompressed < -1:
            raise ValueError("a compressed buffer with a negative length")
    return total


class _Table:
    """A flatbuffer table: fields found through its vtable, every read bounds-checked."""

    def __init__(self, data: memoryview, position: int) -> None:
        self.data = data
        self.position = position
        self.vtable = position - _unpack("<i", data, position)
        self.vtable_size = _unpack("<H", data, self.vtable)

    @classmethod
    def root(cls, data: memoryview) -> _Table:
        return cls(data, _unpack("<I", data, 0))

    def _field(self, field_id: int) -> int | None:
        entry = 4 + 2 * field_id
        if entry + 2 > self.vtable_size:
            return None
        offset = _unpack("<H", self.data, self.vtable + entry)
        return self.position + offset if offset else None

    def scalar(self, field_id: int, fmt: str, default: int) -> int:
        position = self._field(field_id)
        return default if position is None else _unpack(fmt, self.data, position)

    def table(self, field_id: int) -> _Table | None:
        position = self._field(field_id)
        return None if position is None else _Table(self.data, position + _unpack("<I", self.data, position))

    def structs(self, field_id: int, size: int) -> range:
        """Positions of the structs of a vector field."""
        position = self._field(field_id)
        if position is None:
            return range(0)
        start = position + _unpack("<I", self.data, position)
        count = _unpack("<I", self.data, start)
        first = start + 4
        if first + count * size > len(self.data):
            raise ValueError("a flatbuffer vector runs past its message")
        return range(first, first + count * size, size)


def _unpack(fmt: str, data: memoryview, position: int) -> int:
    if position < 0 or position + struct.calcsize(fmt) > len(data):
        raise ValueError("an Arrow IPC message header points outside itself")
    value: int = struct.unpack_from(fmt, data, position)[0]
    return value
