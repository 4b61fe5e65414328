"""The two ways an outbound call ends badly: refused by the policy, or allowed and failed.

They are kept apart because callers treat them differently: a refusal is the caller's
configuration and is never worth retrying; a failure may be (:mod:`service.integrations.retry`
decides which, from ``status`` and ``retry_after``).
"""

from __future__ import annotations


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
    ``retry_after`` is the wait in seconds a 429 or 503 answer asked for in ``Retry-After``
    (None without one). The message names the host, never the response body.
    """

    def __init__(
        self, message: str, *, host: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.host = host
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """No answer, 429 or a 5xx: trying again later may help."""
        return self.status is None or self.status == 429 or self.status >= 500
