"""``/docs`` and ``/redoc`` load everything from this server: no CDN, no font service."""

from __future__ import annotations

import importlib.resources
import re

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.settings import ApiKey, Settings

pytestmark = pytest.mark.anyio

#: Where a page names another resource: attributes, and Swagger UI's ``url: '...'`` option.
REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|\burl:\s*'([^']*)'""")
EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def references(page: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(page)]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_page_references_only_same_origin_urls(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = references(page.text)
    assert "/openapi.json" in urls and any(u.endswith(".js") for u in urls), urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{path} loads {url} from elsewhere"
    for outside in ("http", "cdn.jsdelivr", "fonts.googleapis", "unpkg"):
        assert outside not in page.text, f"{path} mentions {outside}"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_every_asset_the_page_loads_answers_with_its_type_and_the_packaged_bytes(
    client: httpx.AsyncClient, path: str
) -> None:
    static = importlib.resources.files("fastapi_offline") / "static"
    page = await client.get(path)
    for url in references(page.text):
        response = await client.get(url)
        assert response.status_code == 200, url
        if url == "/openapi.json":
            assert response.json()["info"]["title"] == "Yardstick"
            continue
        suffix = url[url.rfind(".") :]
        assert response.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), url
        assert response.content and response.content == (static / url.rsplit("/", 1)[1]).read_bytes()
        assert "max-age=31536000" in response.headers["cache-control"]


async def test_only_the_pages_assets_are_served(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    bundle = next(u for u in references(page) if u.endswith("swagger-ui-bundle.js"))
    folder = bundle.rsplit("/", 1)[0]
    for name in ("__init__.py", "..%2F__init__.py", "missing.js"):
        response = await client.get(f"{folder}/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_docs_are_not_part_of_the_api_contract(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]


async def test_the_docs_need_no_api_key_while_the_api_does(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_keys": [ApiKey(key="secret")]}))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/v1/batches")).status_code == 401
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert (await client.get(path)).status_code == 200, path
    finally:
        app.state.store.close()
