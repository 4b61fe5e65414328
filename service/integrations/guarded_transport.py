"""The transport that enforces the outbound policy where the socket is opened.

A check on the URL alone is not enough: a name that resolves to a public address when checked
may resolve to 127.0.0.1 a moment later, when the connection is made (DNS rebinding). So the
check sits in the network layer: the name is resolved once, every answer is checked against the
:class:`~service.integrations.outbound_policy.OutboundPolicy`, and the connection goes to a
checked address, while the Host header, TLS SNI and certificate verification keep using the name.
Answers are also capped in size as they come off the wire.

Only public interfaces are used: httpcore's connection pool over an
``httpcore.AsyncNetworkBackend`` (:class:`GuardedNetworkBackend`), behind an
``httpx.AsyncBaseTransport`` (:class:`GuardedTransport`). httpx's own ``AsyncHTTPTransport`` takes
no network backend, so it is not used.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import anyio
import httpcore
import httpx

from service.integrations.outbound_errors import OutboundError
from service.integrations.outbound_policy import IPAddress, OutboundPolicy, normalize_host

#: ``resolver(host, port)`` -> the IP addresses (as text) the host name resolves to.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024

# httpcore's exceptions as the httpx ones callers catch, most specific first (the same
# correspondence httpx's own transport applies).
_AS_HTTPX: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _AS_HTTPX:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver (``getaddrinfo`` in a worker thread)."""
    answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [sockaddr[0] for *_, sockaddr in answers]


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy accepts.

    httpcore hands ``connect_tcp`` the URL's host; this resolves it once, checks every answer
    and connects to those checked addresses through ``backend`` (the real one by default).
    httpcore then runs TLS with ``server_hostname`` set to the URL's host, so SNI and the
    certificate check still use the name.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver or system_resolver
        self._backend = backend or httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int, timeout: float | None = None) -> list[IPAddress]:
        """Every address ``host`` resolves to, each accepted by the policy (else OutboundBlocked)."""
        literal = self._policy.check_host(host)
        if literal is not None:
            return [literal]
        try:
            with anyio.fail_after(timeout):
                answers = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:g} s") from None
        except (OSError, UnicodeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise httpcore.ConnectError(f"cannot resolve {host}: {detail}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(answer) for answer in answers))
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve to any address")
        # All answers are checked, not just the one used: a name that mixes public and private
        # answers is a rebinding attempt or a misconfiguration, and is refused either way.
        return [self._policy.check_address(host, ip) for ip in addresses]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.checked_addresses(host, port, timeout)
        failure: Exception | None = None
        for ip in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound calls do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def too_large(host: str, limit: int, status: int) -> OutboundError:
    """The error for an answer longer than ``limit`` bytes (on the wire or decoded)."""
    return OutboundError(
        f"the endpoint's answer is larger than {_size(limit)} (from {host}); it was cut off",
        host=host,
        status=status,
    )


class _CappedStream(httpx.AsyncByteStream):
    """The response body as it comes off the wire, cut off beyond ``limit`` bytes."""

    def __init__(self, response: httpcore.Response, *, limit: int, host: str) -> None:
        self._response = response
        self._limit = limit
        self._host = host

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        with _httpx_errors():
            async for chunk in self._response.aiter_stream():
                seen += len(chunk)
                if seen > self._limit:
                    raise too_large(self._host, self._limit, self._response.status)
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over httpcore's connection pool and a :class:`GuardedNetworkBackend`.

    Each request's URL is checked first (DNS-free, and again for each hop if a caller turns
    redirects on), the connection is checked where it is opened, and the answer is capped:
    ``max_response_bytes`` caps the bytes on the wire (before decompression);
    :func:`~service.integrations.outbound.post_json` also caps the decoded body, so a small
    gzip bomb is cut off too. HTTP/1.1 only, as httpx's default transport.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
        )
        # trust_env=False: no CA bundle or key log file chosen by environment variables.
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(policy, resolver=resolver, backend=network_backend),
        )
        self.policy = policy
        self.max_response_bytes = max_response_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(request.url)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,  # httpx's documented timeout extension, read by httpcore
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        host = normalize_host(request.url.raw_host.decode("ascii"))
        length = httpx.Headers(response.headers).get("content-length", "")
        if length.isdigit() and int(length) > self.max_response_bytes:
            await response.aclose()
            raise too_large(host, self.max_response_bytes, response.status)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CappedStream(response, limit=self.max_response_bytes, host=host),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
