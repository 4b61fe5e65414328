"""API memory and time of large and hostile uploads, through the real HTTP server.

    .venv/bin/python benchmarks/bench_upload_memory.py [--gib 5] [--skip-big]

(a) A 1 GiB chunked upload against the default 512 MiB limit: streamed to a spool file and refused
    with 413 when it passes the limit; the API's memory must stay flat while it streams.
(b) A ``--gib`` GiB Parquet file of random floats (it does not compress) with the limit raised
    (YARDSTICK_MAX_BODY_BYTES=6 GiB), generated once in a temporary directory: the upload streams to
    disk (memory flat), then ingest decodes it from the memory-mapped file and stores it.
(c) Hostile bodies on the default server: a 60M-row constant Parquet column (a ~100 kB file), a
    zstd Arrow stream of 60M constant rows, a 300k-column Parquet file, ten aborted 500 MiB
    uploads; each must be refused quickly with flat memory.

Memory is read from /proc/<api pid>/status: VmRSS and VmHWM (peak), and their split into
anonymous memory (RssAnon: what the process allocated) and file pages (RssFile: here the
memory-mapped upload, clean pages the kernel can drop at any time), sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchServer, peak_rss_bytes

MiB = 1 << 20
GiB = 1 << 30
QUERY = {"model": "bench", "version": "1", "task": "binary", "positive_class": "1"}
PARQUET = "application/vnd.apache.parquet"
CHUNK = 1 * MiB


def status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[name] = int(rest.split()[0]) * 1024
    return values


@dataclass
class Sampler:
    """Peak RssAnon / RssFile / VmRSS of ``pid`` per named phase, sampled in a thread."""

    pid: int
    phase: str = "idle"
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                values = status(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            peak = self.peaks.setdefault(self.phase, {})
            for name, value in values.items():
                peak[name] = max(peak.get(name, 0), value)
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Server(BenchServer):
    """``yardstick serve`` (API only) with extra environment, on a free port and a given data dir,
    warmed up so that imports and first-use allocations are in its idle figure."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(workers=0, data_dir=data_dir, env=env)
        # Warm up: one small upload, so imports and first-use allocations are in the idle figure.
        small = io.BytesIO()
        pq.write_table(pa.table({"label": [0, 1], "score": [0.2, 0.8]}), small)
        post(self, small.getvalue())
        time.sleep(0.5)
        self.idle = status(self.proc.pid)


def post(server: Server, content: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/batches",
        params=QUERY,
        content=content,  # type: ignore[arg-type]
        headers={"content-type": PARQUET, **(headers or {})},
        timeout=3600,
    )


@dataclass
class Row:
    case: str
    status: int
    seconds: float
    stream_anon: int | None  # peak RssAnon above idle while the body streamed
    peak_anon: int  # peak RssAnon above idle, whole request
    peak_file: int  # peak RssFile above idle (mapped upload pages)
    hwm: int  # VmHWM above idle (anonymous + file pages)
    note: str = ""


def measure(server: Server, case: str, send: object, *, headers: dict[str, str] | None = None) -> Row:
    """POST ``send`` (bytes or an iterator) and report time and memory above the server's idle."""
    pid = server.proc.pid
    idle = status(pid)
    hwm_before = peak_rss_bytes(pid)
    sampler = Sampler(pid, phase="request")
    start = time.perf_counter()
    response = post(server, send, headers)
    seconds = time.perf_counter() - start
    sampler.stop()
    peak = sampler.peaks.get("request", idle)
    return Row(
        case=case,
        status=response.status_code,
        seconds=seconds,
        stream_anon=None,
        peak_anon=max(0, peak.get("RssAnon", 0) - idle["RssAnon"]),
        peak_file=max(0, peak.get("RssFile", 0) - idle["RssFile"]),
        hwm=max(0, peak_rss_bytes(pid) - max(hwm_before, idle["VmRSS"])),
        note=response.json().get("detail", "")[:100].replace("|", "/") if response.status_code >= 400 else "",
    )


def chunks(total: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


def file_chunks(path: Path, on_done: list[float]) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while data := handle.read(CHUNK):
            yield data
    on_done.append(time.perf_counter())


def big_parquet(path: Path, total_bytes: int) -> tuple[int, int]:
    """Random floats (incompressible) in 64 feature columns plus label and score; (rows, file bytes)."""
    columns = 64
    group = 256 * 1024
    rows = max(group, total_bytes // (8 * (columns + 2)) // group * group)
    rng = np.random.default_rng(0)
    schema = pa.schema(
        [("label", pa.int8()), ("score", pa.float64())] + [(f"f{i}", pa.float64()) for i in range(columns)]
    )
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(rows // group):
            values = rng.random((columns + 1, group))
            arrays = [pa.array((values[0] < 0.5).astype(np.int8)), pa.array(values[0])]
            arrays += [pa.array(values[i + 1]) for i in range(columns)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    return rows, path.stat().st_size


def bombs() -> list[tuple[str, bytes, dict[str, str]]]:
    out: list[tuple[str, bytes, dict[str, str]]] = []
    rows = 60_000_000
    sink = io.BytesIO()
    pq.write_table(
        pa.table({"label": pa.array(np.zeros(rows, np.int8))}), sink, row_group_size=rows, compression="zstd"
    )
    out.append((f"Parquet, 60M constant rows ({len(sink.getvalue()) / 1e3:.0f} kB)", sink.getvalue(), {}))
    stream = pa.BufferOutputStream()
    table = pa.table({"label": pa.array(np.zeros(rows, np.int8))})
    with pa.ipc.new_stream(
        stream, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")
    ) as writer:
        writer.write_table(table)
    body = stream.getvalue().to_pybytes()
    arrow = {"content-type": "application/vnd.apache.arrow.stream"}
    out.append((f"Arrow stream zstd, 60M constant rows ({len(body) / 1e3:.0f} kB)", body, arrow))
    wide = pa.table({f"c{i}": pa.array([1], pa.int8()) for i in range(300_000)})
    sink = io.BytesIO()
    pq.write_table(wide, sink)
    out.append((f"Parquet, 300k columns ({len(sink.getvalue()) / 1e6:.0f} MB)", sink.getvalue(), {}))
    return out


def abort_uploads(port: int, count: int) -> None:
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (
                f"POST /v1/batches?model=m&version=1&task=binary HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: {PARQUET}\r\nContent-Length: {500 * MiB}\r\n\r\n"
            )
            sock.sendall(head.encode() + b"PAR1" + b"\0" * 60)
            time.sleep(0.05)


def table(rows: list[Row]) -> str:
    lines = [
        "| case | status | seconds | anon MiB while streaming | peak anon MiB | peak file MiB | VmHWM MiB "
        "| answer |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        stream = "-" if r.stream_anon is None else f"{r.stream_anon / MiB:.0f}"
        lines.append(
            f"| {r.case} | {r.status} | {r.seconds:.2f} | {stream} | {r.peak_anon / MiB:.0f} | "
            f"{r.peak_file / MiB:.0f} | {r.hwm / MiB:.0f} | {r.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=5.0, help="size of the big Parquet upload")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="yardstick-upload-bench-"))
    try:
        server = Server(work / "default")
        print(f"default server idle: VmRSS {server.idle['VmRSS'] / MiB:.0f} MiB", flush=True)
        try:
            # A declared length over the limit needs a raw request: httpx sets Content-Length from the body.
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                start = time.perf_counter()
                head = (
                    f"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: {PARQUET}\r\n"
                    f"Content-Length: {GiB}\r\n\r\n"
                )
                sock.sendall(head.encode())
                answer = int(sock.recv(200).split(b"\r\n", 1)[0].split()[1])
                seconds = time.perf_counter() - start
            rows.append(
                Row(
                    "(a) 1 GiB declared (Content-Length)",
                    answer,
                    seconds,
                    None,
                    0,
                    0,
                    0,
                    "refused from the header",
                )
            )
            row = measure(server, "(a) 1 GiB chunked (no length), limit 512 MiB", chunks(GiB))
            row.stream_anon = row.peak_anon
            rows.append(row)
            print(table(rows[-1:]), flush=True)
            for case, body, headers in bombs():
                rows.append(measure(server, f"(c) {case}", body, headers=headers))
                print(table(rows[-1:]), flush=True)
            before = status(server.proc.pid)
            start = time.perf_counter()
            abort_uploads(server.port, 10)
            time.sleep(1.0)
            after = status(server.proc.pid)
            rows.append(
                Row(
                    "(c) 10 aborted uploads declaring 500 MiB",
                    0,
                    time.perf_counter() - start,
                    None,
                    after["RssAnon"] - before["RssAnon"],
                    after["RssFile"] - before["RssFile"],
                    0,
                    "RSS change 1 s after the last",
                )
            )
        finally:
            server.stop()

        if not args.skip_big:
            free = shutil.disk_usage(work).free
            gib = args.gib if free > 20 * GiB else min(args.gib, 2.0)
            path = work / "big.parquet"
            start = time.perf_counter()
            n, size = big_parquet(path, int(gib * GiB))
            print(
                f"generated {size / GiB:.2f} GiB Parquet ({n:,} rows) in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
            limit = str(6 * GiB)
            big = Server(work / "big", {"YARDSTICK_MAX_BODY_BYTES": limit, "YARDSTICK_MAX_ROWS": str(10 * n)})
            try:
                done: list[float] = []
                pid = big.proc.pid
                idle = status(pid)
                sampler = Sampler(pid, phase="stream")

                def switch() -> None:
                    while not done:
                        time.sleep(0.01)
                    sampler.phase = "ingest"

                watcher = threading.Thread(target=switch, daemon=True)
                watcher.start()
                start = time.perf_counter()
                response = post(big, file_chunks(path, done), {"content-length": str(size)})
                seconds = time.perf_counter() - start
                sampler.stop()
                peaks = sampler.peaks
                stream = peaks.get("stream", {})
                ingest = peaks.get("ingest", {})
                streamed = (done[0] - start) if done else seconds
                rows.append(
                    Row(
                        f"(b) {size / GiB:.2f} GiB Parquet, limit 6 GiB: streaming to disk",
                        response.status_code,
                        streamed,
                        stream.get("RssAnon", 0) - idle["RssAnon"],
                        stream.get("RssAnon", 0) - idle["RssAnon"],
                        stream.get("RssFile", 0) - idle["RssFile"],
                        stream.get("VmRSS", 0) - idle["VmRSS"],
                        f"{size / streamed / MiB:.0f} MiB/s",
                    )
                )
                rows.append(
                    Row(
                        "(b) ... then decoding and storing it",
                        response.status_code,
                        seconds - streamed,
                        None,
                        ingest.get("RssAnon", 0) - idle["RssAnon"],
                        ingest.get("RssFile", 0) - idle["RssFile"],
                        peak_rss_bytes(pid) - idle["VmRSS"],
                        response.text[:60].replace("|", "/"),
                    )
                )
            finally:
                big.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
