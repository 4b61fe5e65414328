from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from tests.pg_server import TempPostgres, create_database, find_pg_bin


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server for the whole run: the given one, or a temporary one we start."""
    given = os.environ.get("YARDSTICK_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: install its server binaries (.ci/run does)")
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = TempPostgres(bin_dir)
    server.start()
    try:
        yield server.admin_url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'yardstick.db'}"
    admin: str = request.getfixturevalue("postgres_admin_url")
    return create_database(admin)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        workers=0,
        lease_seconds=30,
        heartbeat_seconds=1,
        poll_seconds=0.05,
        api_keys=[],
    )


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, as the service does."""
    return "asyncio"
