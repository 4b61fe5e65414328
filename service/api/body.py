"""Request bodies of uploads: streamed to a spool file within the size limit, read in place.

A body is kept in memory up to :data:`SPOOL_MEMORY_BYTES`; past that it streams to an anonymous
temporary file under ``<data dir>/uploads`` (no name on disk: nothing is left behind, even by a
``kill -9``). Nothing is allocated from the declared Content-Length, so a client that declares
500 MiB and sends three bytes costs three bytes. Ingest reads the body in place: the in-memory
bytes, or the file memory-mapped (Parquet and Arrow are decoded straight from the mapping).

The body is closed when the request ends, whichever way it ends: answered, refused (413 as soon
as it passes ``max_body_bytes``), or abandoned by the client (starlette's ``ClientDisconnect``).
"""

from __future__ import annotations

import io
import logging
import mmap
import tempfile
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Annotated, Any, BinaryIO, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
import pyarrow as pa
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from service.api.deps import SettingsDep
from service.errors import FieldIssue, MalformedBody, PayloadTooLarge, UnsupportedMediaType

log = logging.getLogger("yardstick.api")
P = ParamSpec("P")
T = TypeVar("T")

#: bodies up to this size stay in memory; larger ones go to a temporary file
SPOOL_MEMORY_BYTES = 8 << 20
#: file writes are gathered to this size and made off the event loop
_WRITE_BYTES = 1 << 20


class Upload:
    """A request body: in memory up to ``memory_bytes``, then in an anonymous temporary file."""

    def __init__(self, directory: Path | None, *, memory_bytes: int = SPOOL_MEMORY_BYTES) -> None:
        self._directory = directory
        self._memory_bytes = memory_bytes
        # In memory: the whole body; once spooled: the bytes not yet written to the file.
        self._pending: bytearray | None = bytearray()
        self._file: IO[bytes] | None = None
        self._map: mmap.mmap | None = None
        self._buffer: pa.Buffer | None = None
        self.size = 0

    @property
    def spooled(self) -> bool:
        """True once the body went to a file."""
        return self._file is not None

    async def append(self, chunk: bytes) -> None:
        assert self._pending is not None, "append after close"
        self._pending += chunk
        self.size += len(chunk)
        if self._file is None and len(self._pending) > self._memory_bytes:
            self._file = self._open_file()
        if self._file is not None and len(self._pending) >= _WRITE_BYTES:
            await self._flush()

    async def finish(self) -> None:
        """Write what is still pending; call once the whole body arrived."""
        if self._file is not None:
            await self._flush()

    async def _flush(self) -> None:
        assert self._file is not None and self._pending is not None
        data, self._pending = self._pending, bytearray()
        await anyio.to_thread.run_sync(self._file.write, data)

    def _open_file(self) -> IO[bytes]:
        if self._directory is not None:
            try:
                self._directory.mkdir(parents=True, exist_ok=True)
                return tempfile.TemporaryFile(dir=self._directory)
            except OSError as exc:
                log.warning(
                    "cannot spool uploads under %s (%s); using the system temp dir", self._directory, exc
                )
        return tempfile.TemporaryFile()

    async def decode(
        self, func: Callable[Concatenate[pa.Buffer, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``func(buffer, *args, **kwargs)`` in a worker thread, for CPU-bound decoding.

        The worker gets this object, not the buffer: an idle worker thread keeps the arguments of
        its last call, and a buffer there would keep the mapping (and the file's disk space) alive
        after :meth:`close`.
        """
        return await run_in_threadpool(self._call, func, args, kwargs)

    def _call(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        return func(self.buffer(), *args, **kwargs)

    def reader(self) -> BinaryIO:
        """A seekable file object over the body (for hashing it in chunks), holding no buffer."""
        return io.BufferedReader(_UploadReader(self))

    def buffer(self) -> pa.Buffer:
        """The whole body as a pyarrow buffer, without a copy (the file memory-mapped)."""
        if self._buffer is None:
            if self._file is None or self.size == 0:
                assert self._pending is not None, "buffer after close"
                self._buffer = pa.py_buffer(self._pending)
            else:
                self._file.flush()
                self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                self._buffer = pa.py_buffer(self._map)
        return self._buffer

    def close(self) -> None:
        """Free the memory and the file now, whatever still refers to this object."""
        self._pending = None
        self._buffer = None
        if self._map is not None:
            mapping, self._map = self._map, None
            _unmap(mapping)
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


class _UploadReader(io.RawIOBase):
    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._upload.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        count = max(0, min(len(view), self._upload.size - self._position))
        if count:
            view[:count] = memoryview(self._upload.buffer().slice(self._position, count)).cast("B")
            self._position += count
        return count


def _unmap(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:
        # Something still reads from the mapping (an exception on its way to the client, say): it is
        # unmapped, and the file's space freed, when its last reader goes.
        log.debug("an upload's memory map is still in use; it is freed with its last reader")


def _refuse_content_encoding(request: Request) -> None:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding and encoding != "identity":
        message = (
            f"content encodings are not accepted (Content-Encoding: {encoding[:50]}); "
            "send the raw body without a Content-Encoding header"
        )
        raise UnsupportedMediaType(message, issues=[FieldIssue("Content-Encoding", message)])


async def read_body(request: Request, settings: SettingsDep) -> AsyncIterator[Upload]:
    """The request body, refused with 413 as soon as it passes ``max_body_bytes``; closed after the
    request."""
    _refuse_content_encoding(request)
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    expected = int(declared) if declared is not None and declared.isdigit() else None
    if expected is not None and expected > limit:
        raise PayloadTooLarge(
            f"the body is {expected} bytes; the limit is {limit} (YARDSTICK_MAX_BODY_BYTES)"
        )
    upload = Upload(settings.data_dir / "uploads")
    try:
        async for chunk in request.stream():
            if upload.size + len(chunk) > limit:
                raise PayloadTooLarge(
                    f"the body is over the limit of {limit} bytes (YARDSTICK_MAX_BODY_BYTES)"
                )
            await upload.append(chunk)
        await upload.finish()
    except ClientDisconnect:
        upload.close()
        # Nobody reads this answer; it keeps the abandoned upload out of the error log.
        raise MalformedBody(
            f"the client closed the connection after {upload.size} bytes of the body"
        ) from None
    except BaseException:
        upload.close()
        raise
    try:
        yield upload
    except BaseException as exc:
        # The frames of a failed ingest hold what it decoded (arrays reading from the upload):
        # free them now, rather than when a reference cycle through the traceback is collected.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        upload.close()


BodyDep = Annotated[Upload, Depends(read_body)]
