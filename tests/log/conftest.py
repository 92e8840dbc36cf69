"""Where a fresh log store lives (a SQLite file, or a new PostgreSQL database),
and how the store suite opens it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services import fresh_database
from trustmesh.log.store import LogStore, SqliteBackend, open_store

INDEX_EVERY_3 = "sqlite-index-every-3"  # keys move into runs every batch or so


@pytest.fixture(
    params=["sqlite", INDEX_EVERY_3, pytest.param("postgres", marks=pytest.mark.postgres)]
)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param.startswith("sqlite"):
        return str(tmp_path / "log.db")
    return fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_log(request: pytest.FixtureRequest, location: str) -> Callable[[], LogStore]:
    """Opens the store at ``location`` (a new LogStore at each call), on the
    INDEX_EVERY_3 variant with the per-device index's keys moving into runs every 3."""
    if request.node.callspec.params["location"] == INDEX_EVERY_3:
        return lambda: LogStore(SqliteBackend(Path(location), index_every=3))
    return lambda: open_store(location)
