"""Outbound HTTP that cannot be turned against the service's own network.

Model endpoints and webhooks are URLs chosen by API callers, so every outbound call is a
possible server-side request forgery: a job could otherwise make the service read the cloud
metadata service (169.254.169.254), a database admin page on 10.x or the service itself on
loopback. The rules, applied to every call made through :func:`outbound_client`:

- only ``http`` and ``https``; no ``user:password@`` in the URL (it would end up stored and
  shown with the job); no legacy numeric hosts (``2130706433``, ``0x7f.1``, ``127.1``) that
  different parsers read differently;
- every address the host resolves to must be public, unless ``YARDSTICK_OUTBOUND_ALLOW``
  names the host or a network containing the address (see :class:`OutboundPolicy`);
- the check happens where the socket is opened: the name is resolved once, every answer is
  checked, and the connection goes to a checked address while the Host header, TLS SNI and
  certificate verification keep using the name. A DNS answer that changes between check and
  connect (DNS rebinding) therefore cannot slip through;
- redirects are not followed, the response size and the total time are capped, and error
  messages never quote the response body (it may hold secrets or attacker-chosen text).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import anyio
import httpcore
import httpx
import orjson

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolver(host, port)`` -> the IP addresses (as text) the host name resolves to.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

ALLOW_ENV = "YARDSTICK_OUTBOUND_ALLOW"
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
USER_AGENT = "yardstick-eval"

_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NUMERIC = re.compile(r"[0-9a-fx.]+")


class OutboundBlocked(Exception):
    """The policy refuses the call; nothing was sent. Not worth retrying.

    ``host`` is the URL's host, ``address`` the offending resolved address (None when the
    URL itself was refused) and ``reason`` a short phrase such as "a loopback address".
    """

    def __init__(self, message: str, *, host: str, reason: str, address: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason
        self.address = address


class OutboundError(Exception):
    """The call was allowed but failed: no connection, timeout, bad status, too large, not JSON.

    ``status`` is the HTTP status when the endpoint answered (also for a 2xx whose body was
    too large or not JSON) and None when no answer came (connection failure, timeout).
    The message names the host, never the response body.
    """

    def __init__(self, message: str, *, host: str, status: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.status = status

    @property
    def retryable(self) -> bool:
        """No answer, 429 or a 5xx: trying again later may help."""
        return self.status is None or self.status == 429 or self.status >= 500


def _normalize_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(_normalize_host(host))
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address behind a non-dotted-quad numeric host (``2130706433``, ``0x7f.1``, ``127.1``).

    These are what the C library's ``inet_aton`` (and so ``getaddrinfo``) accepts besides the
    dotted quad; URL parsers and humans read them differently, so they are refused outright.
    """
    name = _normalize_host(host)
    if not _NUMERIC.fullmatch(name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def _show(ip: IPAddress) -> str:
    """``ip`` as people write it: ``::ffff:127.0.0.1``, where Python 3.11 prints ``::ffff:7f00:1``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address leads to."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def non_public_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address ("a loopback address"), or None when it is.

    ``ipaddress``'s ``is_global`` alone is not enough: on Python 3.11 it is true for multicast,
    NAT64 and 6to4 addresses and for IPv4-compatible ``::7f00:1``, so those are looked at first.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = non_public_reason(inner)
            return None if reason is None else f"{reason} ({_show(ip)} leads to {inner})"
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip in _METADATA:
        return "the cloud metadata service address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def _parse_allow_entry(entry: str) -> str | IPNetwork:
    text = entry.strip()
    try:
        return ipaddress.ip_network(_normalize_host(text), strict=False)
    except ValueError:
        pass
    problem = f"{ALLOW_ENV} entry {entry!r} is neither a host name nor an IP address or CIDR network"
    if not text.isascii():
        try:  # the same IDNA form httpx gives the connection layer
            text = httpx.URL(f"http://{text}/").raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError):
            raise ValueError(problem) from None
    name = _normalize_host(text)
    if not _HOSTNAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        raise ValueError(problem)
    return name


@dataclass(frozen=True)
class OutboundPolicy:
    """Which hosts outbound calls may reach: public addresses, plus what ``allow`` names.

    ``allow`` entries (``YARDSTICK_OUTBOUND_ALLOW``) are host names, matched exactly and
    case-insensitively (every address that name resolves to is then allowed), or IP
    addresses / CIDR networks (``10.0.0.5``, ``10.0.0.0/8``, ``::1``, ``fd00::/8``).
    An entry that is neither raises ``ValueError``, so a typo fails at start-up.

    Examples
    --------
    >>> policy = OutboundPolicy.from_settings(["10.0.0.0/8", "model.internal"])
    >>> policy.check_address("model.internal", "192.168.1.5")
    IPv4Address('192.168.1.5')
    >>> policy.allows("other.internal", ipaddress.ip_address("127.0.0.1"))
    False
    """

    allow: tuple[str, ...] = ()
    hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = tuple(entry.strip() for entry in self.allow if entry.strip())
        parsed = [_parse_allow_entry(entry) for entry in entries]
        object.__setattr__(self, "allow", entries)
        object.__setattr__(self, "hosts", frozenset(p for p in parsed if isinstance(p, str)))
        object.__setattr__(self, "networks", tuple(p for p in parsed if not isinstance(p, str)))

    @classmethod
    def from_settings(cls, allow: Iterable[str]) -> OutboundPolicy:
        """The policy for ``Settings.outbound_allow`` (already split on commas)."""
        return cls(tuple(allow))

    def allows(self, host: str, ip: IPAddress) -> bool:
        """Whether the allow-list names ``host`` or a network holding ``ip`` (or the IPv4 it embeds)."""
        if _normalize_host(host) in self.hosts:
            return True
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            inner = _embedded_ipv4(ip)
            if inner is not None:
                candidates.append(inner)
        return any(c.version == net.version and c in net for c in candidates for net in self.networks)

    def check_address(self, host: str, address: str | IPAddress) -> IPAddress:
        """Return ``address`` as an IP if ``host`` may be reached there, else raise OutboundBlocked."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        reason = non_public_reason(ip)
        if reason is None or self.allows(host, ip):
            return ip
        name = _normalize_host(host)
        shown = _show(ip)
        if _literal_address(name) == ip:
            where = f"{shown} is {reason}"
            fix = f"add {shown} (or a CIDR network containing it) to {ALLOW_ENV}"
        else:
            where = f"it resolves to {shown}, {reason}"
            fix = f"add {name} or {shown} (or a CIDR network containing it) to {ALLOW_ENV}"
        raise OutboundBlocked(
            f"outbound call to {name} refused: {where}. Only public addresses may be called; "
            f"if this endpoint is trusted, {fix}",
            host=name,
            address=shown,
            reason=reason,
        )

    def check_host(self, host: str) -> IPAddress | None:
        """Refuse a host that needs no DNS to be judged; return its address if it is an IP literal.

        Returns None for an ordinary host name: its addresses are checked when it is resolved,
        at connect time. ``localhost`` and ``*.localhost`` always mean this machine (RFC 6761).
        """
        name = _normalize_host(host)
        if not name:
            raise OutboundBlocked("outbound call refused: the URL has no host", host=name, reason="no host")
        literal = _literal_address(name)
        if literal is not None:
            return self.check_address(name, literal)
        legacy = _legacy_ipv4(name)
        if legacy is not None:
            raise OutboundBlocked(
                f"outbound call to {name} refused: it is a non-standard way of writing the IP address "
                f"{legacy}; write addresses in dotted-decimal form",
                host=name,
                address=str(legacy),
                reason="a non-standard numeric address",
            )
        if not _HOSTNAME.fullmatch(name):
            raise OutboundBlocked(
                f"outbound call refused: {name!r} is not a valid host name",
                host=name,
                reason="invalid host name",
            )
        if name == "localhost" or name.endswith(".localhost"):
            self.check_address(name, ipaddress.IPv4Address("127.0.0.1"))
        return None

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Parse ``url`` and refuse what can be refused without DNS; the connection re-checks the rest.

        Suitable for validating a URL when a job is submitted: it raises OutboundBlocked for a
        scheme other than http/https, credentials in the URL, a missing or malformed host, and
        a literal or ``localhost`` host that is not public and not allowed.
        """
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
        except httpx.InvalidURL as exc:  # its message names the bad part, not the whole URL
            raise OutboundBlocked(
                f"outbound call refused: the URL is not valid ({exc})", host="", reason="invalid URL"
            ) from None
        host = _normalize_host(parsed.raw_host.decode("ascii"))
        if parsed.scheme not in _SCHEMES:
            raise OutboundBlocked(
                "outbound call refused: only http and https URLs may be called, "
                f"not {parsed.scheme or 'this'!r}",
                host=host,
                reason="scheme not allowed",
            )
        if parsed.userinfo:
            raise OutboundBlocked(
                f"outbound call to {host} refused: credentials in the URL (user:password@) are not accepted, "
                "because URLs are stored and shown with the job; send them in a header instead",
                host=host,
                reason="credentials in the URL",
            )
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise OutboundBlocked(
                f"outbound call to {host} refused: the URL is not valid (port {parsed.port} is out of range)",
                host=host,
                reason="invalid URL",
            )
        self.check_host(host)
        return parsed


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


def _too_large(host: str, limit: int, status: int) -> OutboundError:
    return OutboundError(
        f"the endpoint's answer is larger than {_size(limit)} (from {host}); it was cut off",
        host=host,
        status=status,
    )


class _CappedStream(httpx.AsyncByteStream):
    """The response body as it comes off the wire, cut off beyond ``limit`` bytes."""

    def __init__(self, stream: httpx.AsyncByteStream, *, limit: int, host: str, status: int) -> None:
        self._stream = stream
        self._limit = limit
        self._host = host
        self._status = status

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise _too_large(self._host, self._limit, self._status)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a :class:`GuardedNetworkBackend`, with the URL checked and the body capped.

    ``max_response_bytes`` caps the bytes on the wire (before decompression); :func:`post_json`
    also caps the decoded body, so a small gzip bomb is cut off too.
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
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx has no parameter for httpcore's network backend, so the pool it just built is
        # replaced by the same pool over the guarded backend (httpx 0.28 routes every request
        # through self._pool; tests/integration/test_outbound_live.py proves the swap took).
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
        # Early and DNS-free; also covers each hop if a caller turns redirects on per request.
        self.policy.check_url(request.url)
        response = await super().handle_async_request(request)
        host = _normalize_host(request.url.raw_host.decode("ascii"))
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_response_bytes:
            await response.aclose()
            raise _too_large(host, self.max_response_bytes, response.status_code)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(
                response.stream, limit=self.max_response_bytes, host=host, status=response.status_code
            ),
            extensions=response.extensions,
        )


class OutboundClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose every connection goes through an :class:`OutboundPolicy`.

    Build it with :func:`outbound_client`. ``timeout`` is the per-phase httpx timeout and,
    in :func:`post_json`, the cap on one whole exchange.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        timeout: float,
        max_response_bytes: int,
        resolver: Resolver | None,
        network_backend: httpcore.AsyncNetworkBackend | None,
    ) -> None:
        transport = GuardedTransport(
            policy, resolver=resolver, network_backend=network_backend, max_response_bytes=max_response_bytes
        )
        # trust_env=False: no proxy from HTTP(S)_PROXY (a proxy would do the connecting for us,
        # past the check) and no credentials from ~/.netrc.
        super().__init__(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
            headers={"user-agent": USER_AGENT},
        )
        self.policy = policy
        self.total_timeout = timeout
        self.max_response_bytes = max_response_bytes


def outbound_client(
    policy: OutboundPolicy,
    *,
    timeout: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    resolver: Resolver | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
) -> OutboundClient:
    """A client for calling user-supplied URLs safely; use it as ``async with outbound_client(...)``.

    Parameters
    ----------
    policy
        What may be reached (:meth:`OutboundPolicy.from_settings`).
    timeout
        Seconds for each phase (connect, write, read between bytes) and, in :func:`post_json`,
        for the whole exchange.
    max_response_bytes
        Longer answers are cut off with OutboundError.
    resolver, network_backend
        For tests: the name resolver (default: the system's) and the network backend the
        guard connects through (default: httpcore's anyio backend). Neither bypasses the check.
    """
    return OutboundClient(
        policy,
        timeout=timeout,
        max_response_bytes=max_response_bytes,
        resolver=resolver,
        network_backend=network_backend,
    )


def _location_host(response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        return "no location"
    try:
        target = response.url.join(location)
    except httpx.InvalidURL:
        return "an invalid location"
    return _normalize_host(target.raw_host.decode("ascii")) or "a location without a host"


def _check_status(response: httpx.Response, host: str) -> None:
    status = response.status_code
    if 300 <= status < 400:
        raise OutboundError(
            f"redirects are not followed: the endpoint {host} answered {status} "
            f"to {_location_host(response)}",
            host=host,
            status=status,
        )
    if not 200 <= status < 300:
        try:  # the standard phrase, not the server's (which is server-chosen text)
            phrase = f" {HTTPStatus(status).phrase}"
        except ValueError:
            phrase = ""
        raise OutboundError(f"the endpoint {host} answered {status}{phrase}", host=host, status=status)


async def _read_capped(response: httpx.Response, *, limit: int, host: str) -> bytes:
    chunks: list[bytes] = []
    seen = 0
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb is cut off here
        seen += len(chunk)
        if seen > limit:
            raise _too_large(host, limit, response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


async def post_json(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    payload: Any,
    *,
    max_bytes: int | None = None,
    timeout: float | None = None,
    decode: bool = True,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON answer (None with ``decode=False``,
    for receivers such as webhooks whose answer carries nothing).

    ``client`` must come from :func:`outbound_client`. ``max_bytes`` (default: the client's
    ``max_response_bytes``) caps the decoded body; ``timeout`` (default: the client's) caps the
    whole exchange, so a server dribbling one byte at a time cannot hold a worker.

    Raises OutboundBlocked when the policy refuses the URL or an address it resolves to, and
    OutboundError for everything else: no connection, timeout, a 3xx (redirects are not
    followed), another non-2xx, an answer too large or not JSON. No message quotes the body.
    """
    if not isinstance(client, OutboundClient):
        raise TypeError(
            "post_json needs a client made by outbound_client(), which enforces the outbound policy"
        )
    parsed = client.policy.check_url(url)
    host = _normalize_host(parsed.raw_host.decode("ascii"))
    limit = client.max_response_bytes if max_bytes is None else max_bytes
    deadline = client.total_timeout if timeout is None else timeout
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {"content-type": "application/json", "accept": "application/json"}
    # Failures are raised after the except blocks, not inside them: h11 and json errors can
    # quote the bytes the server sent, and an exception raised in an except block keeps the
    # original as __context__, where a traceback logger would still print it.
    failure: OutboundError | None = None
    try:
        with anyio.fail_after(deadline):
            async with client.stream("POST", parsed, content=body, headers=headers) as response:
                _check_status(response, host)
                raw = await _read_capped(response, limit=limit, host=host)
    except httpx.ConnectTimeout:
        failure = OutboundError(f"could not connect to the endpoint {host} within {deadline:g} s", host=host)
    except (TimeoutError, httpx.TimeoutException):
        failure = OutboundError(f"the endpoint {host} did not answer within {deadline:g} s", host=host)
    except httpx.ConnectError as exc:  # messages come from the OS, TLS or our resolver
        raise OutboundError(f"could not connect to the endpoint {host}: {exc}", host=host) from exc
    except (httpx.RemoteProtocolError, httpx.DecodingError):
        failure = OutboundError(f"the endpoint {host} did not answer with valid HTTP", host=host)
    except httpx.HTTPError as exc:
        failure = OutboundError(f"the call to the endpoint {host} failed ({type(exc).__name__})", host=host)
    if failure is not None:
        raise failure
    if not decode:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    raise OutboundError(
        f"the endpoint's answer is not JSON (from {host})", host=host, status=response.status_code
    )
