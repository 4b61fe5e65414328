"""Request bodies of uploads: read within the size limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.api.deps import SettingsDep
from service.errors import PayloadTooLarge


async def read_body(request: Request, settings: SettingsDep) -> bytes | bytearray:
    """The request body, refused with 413 as soon as it passes ``max_body_bytes``.

    With a Content-Length the body is read into one buffer of that size: no list of chunks
    plus a joined copy, which would double the peak memory of a large upload.
    """
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    expected = int(declared) if declared is not None and declared.isdigit() else None
    if expected is not None and expected > limit:
        raise PayloadTooLarge(
            f"the body is {expected} bytes; the limit is {limit} (YARDSTICK_MAX_BODY_BYTES)"
        )
    buffer = bytearray(expected) if expected is not None else bytearray()
    size = 0
    async for chunk in request.stream():
        end = size + len(chunk)
        if end > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes (YARDSTICK_MAX_BODY_BYTES)")
        if expected is not None and end <= expected:
            buffer[size:end] = chunk
        else:
            del buffer[size:]
            buffer += chunk
        size = end
    del buffer[size:]
    return buffer


BodyDep = Annotated[bytes | bytearray, Depends(read_body)]
