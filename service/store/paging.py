"""Opaque page tokens for keyset pagination over (created_at, id), newest first."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson

from service.errors import FieldIssue, InvalidInput


def encode_token(created_at: datetime, row_id: str) -> str:
    raw = orjson.dumps([created_at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        created, row_id = orjson.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except Exception as exc:
        raise InvalidInput(
            "page_token is not a token this service issued",
            [FieldIssue("page_token", "pass back the next_page_token of the previous page unchanged")],
        ) from exc


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset})).decode().rstrip("=")


def decode_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = int(orjson.loads(base64.urlsafe_b64decode(padded))["o"])
        if offset < 0:
            raise ValueError(offset)
        return offset
    except Exception as exc:
        raise InvalidInput(
            "page_token is not a token this service issued",
            [FieldIssue("page_token", "pass back the next_page_token of the previous page unchanged")],
        ) from exc
