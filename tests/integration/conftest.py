from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.model_server import ModelServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def yardstick_command() -> list[str]:
    script = Path(sys.executable).parent / "yardstick"
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(p) for p in text.split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Server:
    def __init__(self, data_dir: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = (
            os.environ
            | {
                "YARDSTICK_DATA_DIR": str(data_dir),
                "YARDSTICK_WORKERS": str(workers),
                "YARDSTICK_LEASE_SECONDS": "2",
                "YARDSTICK_HEARTBEAT_SECONDS": "0.5",
                "YARDSTICK_POLL_SECONDS": "0.05",
            }
            | (extra_env or {})
        )
        self.env.pop("YARDSTICK_API_KEYS", None)
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *yardstick_command(),
                    *(args or ("serve", "--port", str(self.port), "--log-level", "warning")),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not args:
            wait_until(self._ready, timeout=60, what=f"server on {self.url} (log: {self.log})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(**kwargs: object) -> Server:
        server = Server(tmp_path / "data", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    """A real KServe-style model server on loopback (tests/integration/model_server.py)."""
    with ModelServer() as server:
        yield server
