"""Opaque, signed page tokens.

A token is ``<payload>.<mac>``: the base64url JSON position (``{"t": created_at, "i": id}`` for
keyset pages over (created_at, id), newest first; ``{"o": offset}`` for the sample log) and an
HMAC-SHA256 of the payload together with its *scope* (the route and project that issued it).
Anything else (garbage, a changed byte, a timestamp without a time zone, a token of another
route or project) is a 400 problem naming ``page_token``, never a 500.

The signing key is per deployment: a random value that the first migration stores in the
database (``service_state``), so every API process behind one database accepts the tokens the
others issued. :class:`service.store.sql.SqlStore` installs it when it opens; tokens issued
before any key is installed (a bare ``SqlStore`` in a test) use a random key of this process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from datetime import datetime
from typing import Any

import orjson

from service.errors import FieldIssue, YardstickError

MAX_TOKEN_LENGTH = 1024
_MAC_BYTES = 16

_keys_lock = threading.Lock()
#: Newest first; several stores opened in one process (tests) each install theirs.
_keys: list[bytes] = [os.urandom(32)]


def install_key(key: bytes) -> None:
    """Sign with ``key`` from now on; keep accepting the few keys installed before it."""
    with _keys_lock:
        if key in _keys:
            _keys.remove(key)
        _keys.insert(0, key)
        del _keys[16:]


def bad_token(reason: str) -> YardstickError:
    return YardstickError(
        f"page_token is not a token this service issued for this list: {reason}",
        [FieldIssue("page_token", "pass back the next_page_token of the previous page unchanged")],
        status=400,
        title="Invalid page token",
        type_slug="invalid-page-token",
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, scope: str, payload: str) -> bytes:
    message = scope.encode() + b"\x00" + payload.encode()
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(position: dict[str, Any], *, scope: str) -> str:
    payload = _b64(orjson.dumps(position))
    return f"{payload}.{_b64(_mac(_keys[0], scope, payload))}"


def verify(token: str, *, scope: str) -> dict[str, Any]:
    """The position in a token this service signed for ``scope``; a 400 problem otherwise."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise bad_token("it is too long")
    payload, dot, mac_text = token.partition(".")
    if not dot or not payload or not mac_text:
        raise bad_token("it is not signed")
    try:
        mac = _unb64(mac_text)
    except (binascii.Error, ValueError) as exc:
        raise bad_token("its signature is not base64url") from exc
    with _keys_lock:
        keys = list(_keys)
    # Every key is checked (no early exit), each in constant time.
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(mac, _mac(key, scope, payload))
    if not valid:
        raise bad_token("its signature does not match (changed, or issued by another list or project)")
    try:
        position = orjson.loads(_unb64(payload))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise bad_token("its content is not readable") from exc
    if not isinstance(position, dict):
        raise bad_token("its content is not a position")
    return position


def encode_token(created_at: datetime, row_id: str, *, scope: str) -> str:
    if created_at.tzinfo is None:
        raise ValueError("page positions are aware UTC datetimes")
    return sign({"t": created_at.isoformat(), "i": row_id}, scope=scope)


def decode_token(token: str, *, scope: str) -> tuple[datetime, str]:
    """The (created_at, id) after which the next page starts."""
    position = verify(token, scope=scope)
    created, row_id = position.get("t"), position.get("i")
    if not isinstance(created, str) or not isinstance(row_id, str) or set(position) != {"t", "i"}:
        raise bad_token("its content is not a list position")
    try:
        at = datetime.fromisoformat(created)
    except ValueError as exc:
        raise bad_token("its timestamp is not ISO 8601") from exc
    if at.tzinfo is None or at.utcoffset() is None:
        raise bad_token("its timestamp has no time zone")
    return at, row_id


def encode_offset(offset: int, *, scope: str = "rows") -> str:
    if offset < 0:
        raise ValueError(offset)
    return sign({"o": offset}, scope=scope)


def decode_offset(token: str | None, *, scope: str = "rows") -> int:
    """The row offset in an offset token (0 without one)."""
    if not token:
        return 0
    position = verify(token, scope=scope)
    offset = position.get("o")
    if set(position) != {"o"} or not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise bad_token("its content is not a row offset")
    return offset
