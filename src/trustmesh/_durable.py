"""Durable small-file writes: what is written survives a crash or power cut."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry, so a file created or renamed in it stays."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``; :class:`FileExistsError` if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask was
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def replace_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path``'s content with ``data``: readers see the old or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A small SQLite database for bookkeeping: autocommit, WAL, fsync on every
    commit (``synchronous = FULL``), ``schema`` applied; usable from any thread
    (callers serialise access with their own lock)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(schema)
    return db
