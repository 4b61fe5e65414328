"""Outbound safety against a real HTTP server on 127.0.0.1.

The server counts what reaches it, so "refused" means nothing arrived, not just that an
exception was raised. Host names go through a fake resolver and every connection through a
recording wrapper around the real network backend: no test sends traffic anywhere but
loopback, and the redirect tests show nothing was even attempted towards the target.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import pytest

from service.integrations.outbound import (
    GuardedNetworkBackend,
    OutboundBlocked,
    OutboundError,
    OutboundPolicy,
    outbound_client,
    post_json,
)

pytestmark = pytest.mark.integration

BIG = 2 * 1024 * 1024


@dataclass
class Loopback:
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    hosts: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            state.hits[self.path] += 1
            state.hosts.append(self.headers.get("Host", ""))
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first, as the timeout tests intend

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self) -> None:
            if self.path == "/predict":
                body = json.dumps({"predictions": [0.25]}).encode()
                self._send(200, body, {"Content-Type": "application/json"})
            elif self.path == "/redirect-private":
                self._send(302, b"", {"Location": "http://10.0.0.1/steal"})
            elif self.path == "/redirect-metadata":
                self._send(307, b"", {"Location": "http://metadata.test/latest/meta-data/"})
            elif self.path == "/big":
                self._send(200, b"[" + b"0," * (BIG // 2) + b"0]")
            elif self.path == "/big-undeclared":  # HTTP/1.0: the body runs until the connection closes
                self.send_response(200)
                self.end_headers()
                for _ in range(BIG // 65536 + 1):
                    self.wfile.write(b" " * 65536)
            elif self.path == "/slow":
                state.stop.wait(10)
                self._send(200, b"[]")
            elif self.path == "/drip":  # never a gap long enough for the read timeout
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    if state.stop.wait(0.05):
                        return
                    self.wfile.write(b" ")
                    self.wfile.flush()
            elif self.path == "/secret-error":
                self._send(500, b"SECRET-db-password")
            else:
                self._send(404, b"")

    return Handler


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state := Loopback(port=0)))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class RecordingNetwork(httpcore.AsyncNetworkBackend):
    """The real network backend, refusing anything but loopback and recording each connect."""

    def __init__(self) -> None:
        self.real = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        assert host == "127.0.0.1", f"test tried to connect to {host}"  # a safety net for the sandbox
        return await self.real.connect_tcp(host, port, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


def resolver(table: dict[str, Sequence[str]], asked: list[str]) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return table[host]

    return resolve


NAMES = {"model.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]}


def client(allow: list[str], network: RecordingNetwork, asked: list[str] | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 5)
    return outbound_client(
        OutboundPolicy.from_settings(allow),
        resolver=resolver(NAMES, [] if asked is None else asked),
        network_backend=network,
        **kwargs,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is a loopback address"),
        ("2130706433", "non-standard way of writing the IP address 127.0.0.1"),
        ("localhost", "resolves to 127.0.0.1, a loopback address"),
        ("model.test", "resolves to 127.0.0.1, a loopback address"),
    ],
)
async def test_loopback_is_refused_and_nothing_arrives(loopback: Loopback, host: str, shown: str) -> None:
    network = RecordingNetwork()
    async with client([], network) as http:
        with pytest.raises(OutboundBlocked, match=shown):
            await post_json(http, loopback.url("/predict", host), {"instances": [{}]})
        with pytest.raises(OutboundBlocked):  # also when the client is used directly
            await http.post(loopback.url("/predict", host), json={})
    assert network.connects == []
    assert loopback.total == 0


@pytest.mark.anyio
@pytest.mark.parametrize("allow", [["127.0.0.1"], ["127.0.0.0/8"]])
async def test_allowed_loopback_is_reached(loopback: Loopback, allow: list[str]) -> None:
    network = RecordingNetwork()
    async with client(allow, network) as http:
        answer = await post_json(http, loopback.url("/predict"), {"instances": [{"x": 1}]})
    assert answer == {"predictions": [0.25]}
    assert loopback.hits == Counter({"/predict": 1})
    assert network.connects == [("127.0.0.1", loopback.port)]


@pytest.mark.anyio
@pytest.mark.parametrize("allow", [["127.0.0.1"], ["model.test"]])
async def test_names_connect_to_the_checked_address_with_their_host_header(
    loopback: Loopback, allow: list[str]
) -> None:
    network = RecordingNetwork()
    asked: list[str] = []
    async with client(allow, network, asked) as http:
        assert await post_json(http, loopback.url("/predict", "model.test"), {}) == {"predictions": [0.25]}
    assert asked == ["model.test"]  # resolved once, by the guard, at connect time
    assert network.connects == [("127.0.0.1", loopback.port)]
    assert loopback.hosts == [f"model.test:{loopback.port}"]


@pytest.mark.anyio
async def test_redirect_to_a_private_address_is_not_followed(loopback: Loopback) -> None:
    network = RecordingNetwork()
    async with client(["127.0.0.1"], network) as http:
        with pytest.raises(OutboundError) as caught:
            await post_json(http, loopback.url("/redirect-private"), {})
        assert str(caught.value) == (
            "redirects are not followed: the endpoint 127.0.0.1 answered 302 to 10.0.0.1"
        )
        # Turning redirects on for one request still cannot reach the target: each hop is checked.
        with pytest.raises(OutboundBlocked, match="10.0.0.1 is a private address"):
            await http.post(loopback.url("/redirect-private"), json={}, follow_redirects=True)
    assert loopback.hits == Counter({"/redirect-private": 2})
    assert network.connects == [("127.0.0.1", loopback.port)] * 2


@pytest.mark.anyio
async def test_redirect_to_a_name_for_the_metadata_service_is_refused(loopback: Loopback) -> None:
    network = RecordingNetwork()
    asked: list[str] = []
    async with client(["127.0.0.1"], network, asked) as http:
        with pytest.raises(OutboundError, match="answered 307 to metadata.test"):
            await post_json(http, loopback.url("/redirect-metadata"), {})
        assert asked == []
        with pytest.raises(OutboundBlocked, match="metadata.test refused: it resolves to 169.254.169.254"):
            await http.post(loopback.url("/redirect-metadata"), json={}, follow_redirects=True)
    assert asked == ["metadata.test"]
    assert network.connects == [("127.0.0.1", loopback.port)] * 2


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/big", "/big-undeclared"])
async def test_oversized_answers_are_cut_off(loopback: Loopback, path: str) -> None:
    async with client(["127.0.0.1"], RecordingNetwork(), max_response_bytes=BIG // 2) as http:
        cut = r"larger than 1 MiB \(from 127.0.0.1\); it was cut off"
        with pytest.raises(OutboundError, match=cut) as caught:
            await post_json(http, loopback.url(path), {})
    assert caught.value.status == 200
    assert not caught.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_slow_answers_time_out(loopback: Loopback, path: str) -> None:
    started = time.monotonic()
    async with client(["127.0.0.1"], RecordingNetwork(), timeout=0.5) as http:
        late = "the endpoint 127.0.0.1 did not answer within 0.5 s"
        with pytest.raises(OutboundError, match=late) as caught:
            await post_json(http, loopback.url(path), {})
    assert time.monotonic() - started < 3
    assert caught.value.retryable


@pytest.mark.anyio
async def test_error_answers_are_not_echoed(loopback: Loopback) -> None:
    async with client(["127.0.0.1"], RecordingNetwork()) as http:
        with pytest.raises(OutboundError) as caught:
            await post_json(http, loopback.url("/secret-error"), {})
    assert str(caught.value) == "the endpoint 127.0.0.1 answered 500 Internal Server Error"
    assert caught.value.status == 500


@pytest.mark.anyio
async def test_the_real_connection_path_is_guarded(loopback: Loopback) -> None:
    """No network test double: the guard sits in httpx's real connection pool."""
    model = loopback.url("/predict", "model.test")  # a name, so only the connect-time check can judge it
    async with outbound_client(OutboundPolicy(), timeout=5, resolver=resolver(NAMES, [])) as http:
        with pytest.raises(OutboundBlocked, match="model.test refused: it resolves to 127.0.0.1"):
            await http.post(model, json={})
    assert loopback.total == 0
    allowed = OutboundPolicy(("127.0.0.1",))
    async with outbound_client(allowed, timeout=5, resolver=resolver(NAMES, [])) as http:
        assert await post_json(http, model, {}) == {"predictions": [0.25]}
    assert loopback.hosts == [f"model.test:{loopback.port}"]


@pytest.mark.anyio
async def test_the_backend_refuses_on_its_own(loopback: Loopback) -> None:
    """Even if a request skipped the URL check, the socket is never opened."""
    backend = GuardedNetworkBackend(OutboundPolicy(), backend=RecordingNetwork())
    with pytest.raises(OutboundBlocked, match="127.0.0.1 is a loopback address"):
        await backend.connect_tcp("127.0.0.1", loopback.port)
    with pytest.raises(OutboundBlocked, match="non-standard way"):
        await backend.connect_tcp("2130706433", loopback.port)
    assert loopback.total == 0
