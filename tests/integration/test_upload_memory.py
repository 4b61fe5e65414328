"""Abandoned uploads give their memory back: the real server, clients that hang up mid-body.

A client that declares a 500 MiB body and hangs up after a few bytes, or drops a chunked upload
halfway, must leave the API process where it was: nothing allocated from the declared length,
nothing kept alive after the disconnect, no temporary file left open.
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import Server

MiB = 1 << 20
DECLARED = 500 * MiB
QUERY = "model=m&version=1&task=binary"
ALLOWED_GROWTH = 50 * MiB


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> list[str]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.append(os.readlink(fd))
        except OSError:
            continue
    return found


def settle(pid: int, ceiling: int, *, what: str, timeout: float = 15.0) -> int:
    """Poll until the process's RSS is at most ``ceiling``; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    current = rss(pid)
    while time.monotonic() < deadline:
        current = rss(pid)
        if current <= ceiling:
            return current
        time.sleep(0.1)
    raise AssertionError(
        f"after {what}, the API holds {current / MiB:.0f} MiB, over {ceiling / MiB:.0f} MiB for {timeout}s"
    )


def request_head(port: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST /v1/batches?{QUERY} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def abort_declared(port: int) -> None:
    """Declare 500 MiB, send the Parquet magic and a few bytes, hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = {"Content-Type": "application/vnd.apache.parquet", "Content-Length": str(DECLARED)}
        sock.sendall(request_head(port, head) + b"PAR1" + b"\0" * 60)
        time.sleep(0.05)  # let the server read the headers and start on the body


def abort_chunked(port: int, size: int) -> None:
    """Send ``size`` bytes of a chunked CSV upload, never the last chunk, hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = {"Content-Type": "text/csv", "Transfer-Encoding": "chunked"}
        sock.sendall(request_head(port, head))
        chunk = b"label,score\n" + b"1,0.5\n" * ((MiB - 12) // 6)
        sent = 0
        while sent < size:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        time.sleep(0.05)


def parquet_body(rows: int = 1000) -> bytes:
    table = pa.table(
        {"label": [i % 2 for i in range(rows)], "score": [0.25 + 0.5 * (i % 2) for i in range(rows)]}
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server stopped answering /readyz")


@pytest.mark.parametrize(
    ("kind", "abort"),
    [
        ("declared 500 MiB, sent 64 bytes", lambda port: abort_declared(port)),
        ("chunked, dropped after 24 MiB", lambda port: abort_chunked(port, 24 * MiB)),
    ],
)
def test_aborted_uploads_leave_the_api_memory_where_it_was(
    servers: Callable[..., Server], kind: str, abort: Callable[[int], None]
) -> None:
    server = servers(workers=0).start()
    assert server.proc is not None
    pid = server.proc.pid
    # Warm up: one upload that succeeds and one abandoned, so lazily built state is in the baseline.
    created = httpx.post(
        f"{server.url}/v1/batches?{QUERY}",
        content=parquet_body(),
        headers={"content-type": "application/vnd.apache.parquet"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    abort(server.port)
    wait_ready(server.url)
    baseline = settle(pid, rss(pid) + ALLOWED_GROWTH, what="the warm-up")
    fds = len(open_fds(pid))

    for i in range(10):
        abort(server.port)
        settle(pid, baseline + ALLOWED_GROWTH, what=f"{i + 1} aborted uploads ({kind})")

    wait_ready(server.url)
    # No spool file is left open (anonymous temporary files show as ".../uploads/#123 (deleted)").
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        len(open_fds(pid)) > fds or any("/uploads/" in fd for fd in open_fds(pid))
    ):
        time.sleep(0.1)
    assert not [fd for fd in open_fds(pid) if "/uploads/" in fd]
    assert len(open_fds(pid)) <= fds
    # The server still works, and abandoned uploads are not logged as errors.
    again = httpx.post(
        f"{server.url}/v1/batches?{QUERY}",
        content=parquet_body(),
        headers={"content-type": "application/vnd.apache.parquet"},
        timeout=30,
    )
    assert again.status_code == 201, again.text
    assert "Traceback" not in server.log.read_text()
