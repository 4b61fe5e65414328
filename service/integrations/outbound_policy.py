"""Which hosts and addresses outbound calls may reach: the policy, with no networking in it.

Model endpoints and webhooks are URLs chosen by API callers, so every outbound call is a
possible server-side request forgery: a job could otherwise make the service read the cloud
metadata service (169.254.169.254), a database admin page on 10.x or the service itself on
loopback. The rules:

- only ``http`` and ``https``; no ``user:password@`` in the URL (it would end up stored and
  shown with the job); no legacy numeric hosts (``2130706433``, ``0x7f.1``, ``127.1``) that
  different parsers read differently;
- every address the host resolves to must be public, unless ``YARDSTICK_OUTBOUND_ALLOW``
  names the host or a network containing the address (see :class:`OutboundPolicy`).

This module judges URLs, host names and addresses; it never resolves or connects. Where the
check is enforced -- at the socket, on every address a name resolves to -- is the transport's
job (:mod:`service.integrations.guarded_transport`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from service.integrations.outbound_errors import OutboundBlocked

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "YARDSTICK_OUTBOUND_ALLOW"

_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NUMERIC = re.compile(r"[0-9a-fx.]+")


def normalize_host(host: str) -> str:
    """``host`` as the policy compares it: lower case, no brackets around IPv6, no final dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(normalize_host(host))
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address behind a non-dotted-quad numeric host (``2130706433``, ``0x7f.1``, ``127.1``).

    These are what the C library's ``inet_aton`` (and so ``getaddrinfo``) accepts besides the
    dotted quad; URL parsers and humans read them differently, so they are refused outright.
    """
    name = normalize_host(host)
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
        return ipaddress.ip_network(normalize_host(text), strict=False)
    except ValueError:
        pass
    problem = f"{ALLOW_ENV} entry {entry!r} is neither a host name nor an IP address or CIDR network"
    if not text.isascii():
        try:  # the same IDNA form httpx gives the connection layer
            text = httpx.URL(f"http://{text}/").raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError):
            raise ValueError(problem) from None
    name = normalize_host(text)
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
        if normalize_host(host) in self.hosts:
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
        name = normalize_host(host)
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
        name = normalize_host(host)
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
        host = normalize_host(parsed.raw_host.decode("ascii"))
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
