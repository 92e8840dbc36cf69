"""Where trustmesh keeps its files by default."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "TRUSTMESH_DATA_DIR"


def default_data_dir() -> Path:
    """``$TRUSTMESH_DATA_DIR``, else the user's data directory (``~/.local/share/trustmesh``)."""
    return Path(os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("trustmesh"))
