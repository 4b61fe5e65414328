"""Outbound safety without any network traffic.

The policy is checked on URLs and addresses directly; the connection path runs over
httpcore's mock network backend with a fake resolver, so "connecting" to 8.8.8.8 here
only records the address: nothing leaves the process.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx
import pytest

from service.integrations.outbound import (
    ALLOW_ENV,
    OutboundBlocked,
    OutboundError,
    OutboundPolicy,
    non_public_reason,
    outbound_client,
    post_json,
)
from service.settings import Settings

NO_ALLOW = OutboundPolicy()


# --- the policy ------------------------------------------------------------------------------

REFUSED_URLS = [
    ("http://127.0.0.1/", "127.0.0.1", "loopback"),
    ("http://127.5.5.5:8080/x", "127.5.5.5", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "metadata"),
    ("http://169.254.1.1/", "169.254.1.1", "link-local"),
    ("http://10.0.0.1/", "10.0.0.1", "private"),
    ("http://172.16.0.1/", "172.16.0.1", "private"),
    ("http://192.168.1.1/", "192.168.1.1", "private"),
    ("http://100.64.0.1/", "100.64.0.1", "carrier-grade NAT"),
    ("http://0.0.0.0/", "0.0.0.0", "unspecified"),
    ("http://224.0.0.1/", "224.0.0.1", "multicast"),
    ("http://255.255.255.255/", "255.255.255.255", "private"),
    ("http://[::1]/", "::1", "loopback"),
    ("http://[::]/", "::", "unspecified"),
    ("http://[fe80::1]/", "fe80::1", "link-local"),
    ("http://[fc00::1]/", "fc00::1", "private"),
    ("http://[fec0::1]/", "fec0::1", "reserved"),
    ("http://[ff02::1]/", "ff02::1", "multicast"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1", "private"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", "metadata"),
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1", "loopback"),
    ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1", "private"),
    ("http://[64:ff9b:1::1]/", "64:ff9b:1::1", "NAT64"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1::", "loopback"),
    ("http://[::7f00:1]/", "::7f00:1", "reserved"),
    ("https://[2001:db8::1]/", "2001:db8::1", "private"),
]


@pytest.mark.parametrize(("url", "address", "reason"), REFUSED_URLS)
def test_non_public_literal_addresses_are_refused(url: str, address: str, reason: str) -> None:
    with pytest.raises(OutboundBlocked) as caught:
        NO_ALLOW.check_url(url)
    message = str(caught.value)
    assert f"outbound call to {address} refused" in message
    assert reason in message
    assert ALLOW_ENV in message  # says how to allow it
    assert caught.value.address == address


@pytest.mark.parametrize(
    ("url", "means"),
    [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
        ("http://134744072/", "8.8.8.8"),  # even when public: parsers disagree on these forms
    ],
)
def test_legacy_numeric_hosts_are_refused_even_when_allowed(url: str, means: str) -> None:
    policy = OutboundPolicy.from_settings(["0.0.0.0/0"])
    with pytest.raises(OutboundBlocked, match=rf"non-standard way of writing the IP address {means}\b"):
        policy.check_url(url)


@pytest.mark.parametrize("url", ["http://localhost/", "http://LOCALHOST.:8000/v1", "https://api.localhost/"])
def test_localhost_names_are_refused_without_dns(url: str) -> None:
    with pytest.raises(OutboundBlocked, match="resolves to 127.0.0.1, a loopback address"):
        NO_ALLOW.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://example.com/",
        "ws://example.com/",
        "javascript:alert(1)",
    ],
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(OutboundBlocked, match="only http and https"):
        NO_ALLOW.check_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://user:secret@example.com/", "credentials in the URL"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "not a valid host name"),
        ("http://[::1/", "not valid"),
        ("http://example.com:99999/", "not valid"),
    ],
)
def test_malformed_urls_are_refused_cleanly(url: str, message: str) -> None:
    with pytest.raises(OutboundBlocked, match=message) as caught:
        NO_ALLOW.check_url(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None
    assert NO_ALLOW.check_address("model.example", address) == ipaddress.ip_address(address)
    host = f"[{address}]" if ":" in address else address
    assert NO_ALLOW.check_url(f"https://{host}/v1/predict").scheme == "https"


def test_public_host_names_pass_the_url_check_and_wait_for_resolution() -> None:
    assert NO_ALLOW.check_url("https://Model.Example.COM/v1/models/m:predict").host == "model.example.com"
    assert NO_ALLOW.check_host("model.example.com") is None


def test_allow_list_entries() -> None:
    entries = ["127.0.0.1", " 10.0.0.0/8 ", "Model.Internal.", "[::1]", "fd00::/8", ""]
    policy = OutboundPolicy.from_settings(entries)
    assert policy.allow == ("127.0.0.1", "10.0.0.0/8", "Model.Internal.", "[::1]", "fd00::/8")
    assert policy.check_url("http://127.0.0.1:8000/").host == "127.0.0.1"
    assert policy.check_url("http://[::1]/").host == "::1"
    for host, address in [
        ("any.example", "10.200.0.1"),
        ("any.example", "::ffff:10.0.0.1"),  # the embedded IPv4 address is in 10.0.0.0/8
        ("any.example", "fd12::1"),
        ("MODEL.internal", "192.168.1.1"),  # allowed by name, whatever it resolves to
    ]:
        assert policy.check_address(host, address) == ipaddress.ip_address(address)
    with pytest.raises(OutboundBlocked, match=r"add other\.internal or 192\.168\.1\.1"):
        policy.check_address("other.internal", "192.168.1.1")
    with pytest.raises(OutboundBlocked, match="127.0.0.2 is a loopback address"):
        policy.check_url("http://127.0.0.2/")  # only the single address was allowed
    with pytest.raises(OutboundBlocked, match="169.254.169.254"):
        policy.check_url("http://169.254.169.254/")


def test_allow_list_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.0/8, model.internal")
    policy = OutboundPolicy.from_settings(Settings().outbound_allow)
    assert policy.hosts == frozenset({"model.internal"})
    assert policy.networks == (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(
    "entry", ["http://model.internal", "10.0.0.0/33", "a b", "model.internal:8080", "1.2.3.999"]
)
def test_bad_allow_entries_fail_loudly(entry: str) -> None:
    with pytest.raises(ValueError, match=f"{ALLOW_ENV} entry"):
        OutboundPolicy.from_settings([entry])


def test_error_kinds() -> None:
    assert OutboundError("x", host="h").retryable
    assert OutboundError("x", host="h", status=503).retryable
    assert not OutboundError("x", host="h", status=404).retryable
    assert not OutboundError("x", host="h", status=200).retryable  # answered, but too large / not JSON


# --- the connection path, over a mock network ----------------------------------------------


class RecordingStream(httpcore.AsyncMockStream):
    def __init__(self, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self.written = b""
        self.server_hostname: str | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        self.server_hostname = server_hostname
        return self


class RecordingBackend(httpcore.AsyncMockBackend):
    """Answers every connection with ``answer``; records where it was asked to connect."""

    def __init__(self, *answer: bytes) -> None:
        super().__init__(list(answer))
        self.connects: list[tuple[str, int]] = []
        self.streams: list[RecordingStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        stream = RecordingStream(list(self._buffer))
        self.streams.append(stream)
        return stream


def fake_resolver(table: dict[str, Sequence[str]], asked: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if asked is not None:
            asked.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


OK_JSON = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{"predictions": [1]}\n'
)


@pytest.mark.anyio
async def test_connects_to_the_checked_address_keeping_host_and_sni() -> None:
    network = RecordingBackend(OK_JSON)
    resolver = fake_resolver({"model.example": ["8.8.8.8"]})
    async with outbound_client(NO_ALLOW, timeout=5, resolver=resolver, network_backend=network) as client:
        url = "https://model.example/v1/models/m:predict"
        answer = await post_json(client, url, {"instances": [{"a": 1}]})
    assert answer == {"predictions": [1]}
    assert network.connects == [("8.8.8.8", 443)]
    (stream,) = network.streams
    assert stream.server_hostname == "model.example"  # TLS SNI and certificate check use the name
    assert b"\r\nHost: model.example\r\n" in stream.written
    assert stream.written.endswith(b'{"instances":[{"a":1}]}')


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answers", "bad"),
    [
        (["127.0.0.1"], "127.0.0.1"),
        (["8.8.8.8", "10.0.0.1"], "10.0.0.1"),  # one bad answer refuses the name
        (["::ffff:127.0.0.1"], "::ffff:127.0.0.1"),
        (["169.254.169.254"], "169.254.169.254"),
        (["::1", "2606:4700:4700::1111"], "::1"),
    ],
)
async def test_a_name_resolving_to_a_non_public_address_is_refused_before_connecting(
    answers: list[str], bad: str
) -> None:
    network = RecordingBackend(OK_JSON)
    resolver = fake_resolver({"model.example": answers})
    async with outbound_client(NO_ALLOW, timeout=5, resolver=resolver, network_backend=network) as client:
        with pytest.raises(OutboundBlocked) as caught:
            await post_json(client, "http://model.example/", {})
    assert f"outbound call to model.example refused: it resolves to {bad}" in str(caught.value)
    assert network.connects == []


@pytest.mark.anyio
async def test_a_rebinding_name_is_judged_by_the_answer_actually_used() -> None:
    """Each connection resolves once and connects to what it checked: a later answer cannot sneak in."""
    answers = iter([["8.8.8.8"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return next(answers)

    network = RecordingBackend(OK_JSON)
    for expected in ("ok", "blocked"):
        http = outbound_client(NO_ALLOW, timeout=5, resolver=rebinding, network_backend=network)
        async with http as client:
            if expected == "ok":
                assert await post_json(client, "http://rebind.example/", {}) == {"predictions": [1]}
            else:
                with pytest.raises(OutboundBlocked, match="127.0.0.1"):
                    await post_json(client, "http://rebind.example/", {})
    assert network.connects == [("8.8.8.8", 80)]


@pytest.mark.anyio
async def test_hosts_allowed_by_name_or_network_connect_to_the_resolved_address() -> None:
    resolver = fake_resolver({"model.internal": ["10.1.2.3"]})
    for allow in (["model.internal"], ["10.0.0.0/8"]):
        network = RecordingBackend(OK_JSON)
        policy = OutboundPolicy.from_settings(allow)
        async with outbound_client(policy, timeout=5, resolver=resolver, network_backend=network) as client:
            await post_json(client, "http://model.internal:8080/", {})
        assert network.connects == [("10.1.2.3", 8080)]


@pytest.mark.anyio
async def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://10.0.0.1:3128")
    network = RecordingBackend(OK_JSON)
    resolver = fake_resolver({"model.example": ["8.8.8.8"]})
    async with outbound_client(NO_ALLOW, timeout=5, resolver=resolver, network_backend=network) as client:
        assert not client.follow_redirects
        assert not client.trust_env
        await post_json(client, "https://model.example/", {})
    assert network.connects == [("8.8.8.8", 443)]


async def _post(answer: bytes, **kwargs: Any) -> tuple[Any, RecordingBackend]:
    network = RecordingBackend(answer)
    resolver = fake_resolver({"model.example": ["8.8.8.8"]})
    cap = kwargs.pop("max_response_bytes", 1024 * 1024)
    async with outbound_client(
        NO_ALLOW, timeout=5, resolver=resolver, network_backend=network, max_response_bytes=cap
    ) as client:
        return await post_json(client, "https://model.example/predict?token=t0ken", {}, **kwargs), network


@pytest.mark.anyio
async def test_redirects_are_reported_not_followed() -> None:
    answer = (
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    with pytest.raises(OutboundError) as caught:
        await _post(answer)
    assert str(caught.value) == (
        "redirects are not followed: the endpoint model.example answered 302 to 169.254.169.254"
    )
    assert caught.value.status == 302


@pytest.mark.anyio
async def test_a_redirect_followed_on_request_is_still_checked() -> None:
    answer = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n"
    network = RecordingBackend(answer)
    resolver = fake_resolver({"model.example": ["8.8.8.8"]})
    async with outbound_client(NO_ALLOW, timeout=5, resolver=resolver, network_backend=network) as client:
        with pytest.raises(OutboundBlocked, match="10.0.0.1 is a private address"):
            await client.post("http://model.example/", json={}, follow_redirects=True)
    assert network.connects == [("8.8.8.8", 80)]


SECRET = b"SECRET-7f3a"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "message", "status"),
    [
        (
            b"HTTP/1.1 500 Oops " + SECRET + b"\r\nContent-Length: 11\r\n\r\n" + SECRET,
            "the endpoint model.example answered 500 Internal Server Error",
            500,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + SECRET, "the endpoint's answer is not JSON", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "the endpoint's answer is not JSON", 200),
        (SECRET + b" garbage\r\n\r\n", "did not answer with valid HTTP", None),
        (b"HTTP/1.1 200 OK\r\nX-Bad " + SECRET + b"\r\n\r\n", "did not answer with valid HTTP", None),
    ],
)
async def test_errors_never_echo_the_body(answer: bytes, message: str, status: int | None) -> None:
    with pytest.raises(OutboundError) as caught:
        await _post(answer)
    assert message in str(caught.value)
    assert caught.value.status == status
    chain: BaseException | None = caught.value
    while chain is not None:  # nor does anything it chains to
        assert SECRET.decode() not in str(chain)
        assert "t0ken" not in str(chain)
        chain = chain.__cause__ or chain.__context__


@pytest.mark.anyio
async def test_declared_oversize_answers_are_refused_unread() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"[" + b"1," * 999 + b"1]"
    with pytest.raises(OutboundError, match=r"larger than 1000 bytes \(from model.example\)"):
        await _post(answer, max_response_bytes=1000)


@pytest.mark.anyio
async def test_undeclared_oversize_answers_are_cut_off() -> None:
    body = b"[" + b"1," * 5000 + b"1]"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with pytest.raises(OutboundError, match="larger than 1000 bytes"):
        answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
        await _post(answer, max_response_bytes=1000)


@pytest.mark.anyio
async def test_compressed_answers_are_capped_after_decompression() -> None:
    bomb = gzip.compress(b"[" + b"0," * 500_000 + b"0]")
    assert len(bomb) < 10_000
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(bomb), bomb)
    with pytest.raises(OutboundError, match="larger than 10000 bytes"):
        await _post(answer, max_bytes=10_000)


@pytest.mark.anyio
async def test_unresolvable_names_are_connection_errors() -> None:
    network = RecordingBackend(OK_JSON)
    unresolvable = "could not connect to the endpoint nowhere.example: cannot resolve"
    http = outbound_client(NO_ALLOW, timeout=5, resolver=fake_resolver({}), network_backend=network)
    async with http as client:
        with pytest.raises(OutboundError, match=unresolvable) as caught:
            await post_json(client, "http://nowhere.example/", {})
    assert caught.value.retryable
    assert network.connects == []


@pytest.mark.anyio
async def test_post_json_refuses_unguarded_clients_and_bad_urls() -> None:
    async with httpx.AsyncClient() as plain:
        with pytest.raises(TypeError, match="outbound_client"):
            await post_json(plain, "https://model.example/", {})
    network = RecordingBackend(OK_JSON)
    async with outbound_client(NO_ALLOW, timeout=5, network_backend=network) as client:
        for url in ("ftp://model.example/", "http://2130706433/", "http://[::1]:8000/"):
            with pytest.raises(OutboundBlocked):
                await post_json(client, url, {})
    assert network.connects == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "status", "retry_after"),
    [
        (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", 429, 7.0),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nDate: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
            b"Retry-After: Wed, 21 Oct 2015 07:30:00 GMT\r\nContent-Length: 0\r\n\r\n",
            503,
            120.0,
        ),
        (
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: " + SECRET + b"\r\nContent-Length: 0\r\n\r\n",
            429,
            None,
        ),
        (b"HTTP/1.1 500 Internal Server Error\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", 500, None),
    ],
)
async def test_retry_after_is_read_from_429_and_503(
    answer: bytes, status: int, retry_after: float | None
) -> None:
    with pytest.raises(OutboundError) as caught:
        await _post(answer)
    assert caught.value.status == status and caught.value.retryable
    assert caught.value.retry_after == retry_after
    assert ("Retry-After" in str(caught.value)) is (retry_after is not None)
    assert SECRET.decode() not in str(caught.value)
