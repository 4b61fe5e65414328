"""Annotated dependencies shared by the routers."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request

from service.errors import Unauthorized
from service.settings import Settings
from service.store import Store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Bearer-token check; every configured key is compared in constant time."""
    if not settings.api_keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    presented = token.strip().encode() if scheme.lower() == "bearer" else b""
    matched = False
    for key in settings.api_keys:
        # No early exit: the time taken does not depend on which key (if any) matched.
        matched |= hmac.compare_digest(presented, key.encode())
    if not matched:
        raise Unauthorized("send a valid API key as `Authorization: Bearer <key>`")


class Paging:
    def __init__(
        self,
        settings: SettingsDep,
        page_size: Annotated[int | None, Query(ge=1, description="Items per page.")] = None,
        page_token: Annotated[
            str | None, Query(description="`next_page_token` of the previous page.")
        ] = None,
    ) -> None:
        self.page_size = min(page_size or settings.default_page_size, settings.max_page_size)
        self.page_token = page_token


PagingDep = Annotated[Paging, Depends()]
