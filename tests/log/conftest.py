"""Where a fresh log store lives: a SQLite file, or a new PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import fresh_database
from trustmesh.log.store import _sqlite_index


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-index-every-3",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param.startswith("sqlite"):
        if request.param == "sqlite-index-every-3":  # keys move into runs every batch or so
            request.getfixturevalue("monkeypatch").setattr(_sqlite_index, "INDEX_EVERY", 3)
        return str(tmp_path / "log.db")
    return fresh_database(request.getfixturevalue("postgres_url"))
