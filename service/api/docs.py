"""``/docs`` (Swagger UI) and ``/redoc`` that work without a network.

FastAPI's own pages load their scripts, styles and fonts from CDNs, so behind a firewall or on a
plane they stay blank. These pages load the same Swagger UI and ReDoc builds from the
``fastapi-offline`` package's ``static/`` folder (only its files; not its ``FastAPIOffline``
class), served by this router under ``/docs/assets/<package version>/``: the version in the path
lets a browser keep each file for a year, and an upgrade gets new URLs. No route here is part of
the OpenAPI document, and none needs an API key (the document itself is public too).
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS_PACKAGE = "fastapi_offline"
ASSETS_VERSION = importlib.metadata.version("fastapi-offline")
ASSETS_PATH = f"/docs/assets/{ASSETS_VERSION}"

#: The files the pages load, with their media types; nothing else of the folder is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
CACHE_FOREVER = "public, max-age=31536000, immutable"


def _asset_dir() -> Path:
    # a wheel installs the package as plain files, so the folder has a real path
    return Path(str(importlib.resources.files(ASSETS_PACKAGE) / "static"))


def _urls(request: Request) -> tuple[str, str]:
    """The OpenAPI document's URL and the assets' prefix, behind a proxy's root path too."""
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{root}{request.app.openapi_url}", f"{root}{ASSETS_PATH}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{request.app.title} - API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        # no badge asking validator.swagger.io about the document
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return get_redoc_html(
        openapi_url=openapi_url,
        title=f"{request.app.title} - API",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_PATH + "/{name}")
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(_asset_dir() / name, media_type=media_type, headers={"Cache-Control": CACHE_FOREVER})
