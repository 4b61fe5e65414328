"""Where the service is and how to authenticate: arguments first, then the environment."""

from __future__ import annotations

import os

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "YARDSTICK_URL"
API_KEY_VARIABLE = "YARDSTICK_API_KEY"
#: uploads of millions of rows take a while; a connection that does not open fails fast
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


def service_url(url: str | None) -> str:
    return (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get(API_KEY_VARIABLE)
    return {"Authorization": f"Bearer {key}"} if key else {}
