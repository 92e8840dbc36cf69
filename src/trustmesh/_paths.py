"""Where trustmesh keeps its files by default, and how it makes its directories."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "TRUSTMESH_DATA_DIR"


def default_data_dir() -> Path:
    """``$TRUSTMESH_DATA_DIR``, else the user's data directory (``~/.local/share/trustmesh``)."""
    return Path(os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("trustmesh"))


def private_dir(path: Path) -> Path:
    """``path``, created owner-only (0700) if it is not there, with its parents: data
    directories hold keystores, logs and chains that are nobody else's to read."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
