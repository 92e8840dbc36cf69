"""Where a fresh log store lives: a SQLite file, or a new PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return fresh_database(request.getfixturevalue("postgres_url"))
