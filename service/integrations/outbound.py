"""Outbound HTTP that cannot be turned against the service's own network: the client callers use.

Model endpoints and webhooks are URLs chosen by API callers. Every call made through
:func:`outbound_client` and :func:`post_json` is checked by the outbound policy
(:mod:`service.integrations.outbound_policy`: public addresses only, unless
``YARDSTICK_OUTBOUND_ALLOW`` names the host or network), enforced where the socket is opened
(:mod:`service.integrations.guarded_transport`: resolved once, every answer checked, connected to
a checked address, so DNS rebinding cannot slip through). On top of that, here: redirects are not
followed, the response size and the total time are capped, and error messages never quote the
response body (it may hold secrets or attacker-chosen text). Whether a failed call is worth
repeating is :mod:`service.integrations.retry`'s to say.

This module is the one callers import; the policy's and the errors' names are re-exported here.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import anyio
import httpcore
import httpx
import orjson

from service.integrations.guarded_transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    GuardedNetworkBackend,
    GuardedTransport,
    Resolver,
    too_large,
)
from service.integrations.outbound_errors import OutboundBlocked, OutboundError
from service.integrations.outbound_policy import ALLOW_ENV, OutboundPolicy, non_public_reason, normalize_host
from service.integrations.retry import retry_after_seconds

__all__ = [
    "ALLOW_ENV",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "GuardedNetworkBackend",
    "OutboundBlocked",
    "OutboundClient",
    "OutboundError",
    "OutboundPolicy",
    "non_public_reason",
    "outbound_client",
    "post_json",
    "request_json",
]

USER_AGENT = "yardstick-eval"


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
    return normalize_host(target.raw_host.decode("ascii")) or "a location without a host"


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
        retry_after = None
        if status in (429, 503):  # "come back later", and when
            retry_after = retry_after_seconds(
                response.headers.get("retry-after"), date=response.headers.get("date")
            )
        wait = "" if retry_after is None else f" (Retry-After: {retry_after:g} s)"
        raise OutboundError(
            f"the endpoint {host} answered {status}{phrase}{wait}",
            host=host,
            status=status,
            retry_after=retry_after,
        )


async def _read_capped(response: httpx.Response, *, limit: int, host: str) -> bytes:
    chunks: list[bytes] = []
    seen = 0
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb is cut off here
        seen += len(chunk)
        if seen > limit:
            raise too_large(host, limit, response.status_code)
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
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return await request_json(
        client, "POST", url, content=body, content_type="application/json",
        max_bytes=max_bytes, timeout=timeout, decode=decode,
    )  # fmt: skip


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
    content_type: str | None = None,
    max_bytes: int | None = None,
    timeout: float | None = None,
    decode: bool = True,
) -> Any:
    """Any method with an optional body; the answer as :func:`post_json` reads it (the same
    checks, caps and errors)."""
    if not isinstance(client, OutboundClient):
        raise TypeError(
            "outbound requests need a client made by outbound_client(), which enforces the outbound policy"
        )
    parsed = client.policy.check_url(url)
    host = normalize_host(parsed.raw_host.decode("ascii"))
    limit = client.max_response_bytes if max_bytes is None else max_bytes
    deadline = client.total_timeout if timeout is None else timeout
    headers = {"accept": "application/json"}
    if content_type is not None:
        headers["content-type"] = content_type
    # Failures are raised after the except blocks, not inside them: h11 and json errors can
    # quote the bytes the server sent, and an exception raised in an except block keeps the
    # original as __context__, where a traceback logger would still print it.
    failure: OutboundError | None = None
    try:
        with anyio.fail_after(deadline):
            exchange = client.stream(method, parsed, params=params, content=content, headers=headers)
            async with exchange as response:
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
