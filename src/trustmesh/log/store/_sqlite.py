"""SQLite backend: one file, WAL, every commit fsync'd (synchronous=FULL).

Tables: ``bundles`` (entry bundles of 256 entries), ``tiles`` (one row per tile, keyed
by ``level << 48 | index``), ``devices`` (DID → small id, last seq) and
``device_entries`` ((device, seq) → index), and ``meta`` (the committed size).
Readers use their own connection per thread and never block the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from trustmesh._paths import private_dir
from trustmesh.errors import DuplicateEntry, StoreError
from trustmesh.log.store._backend import Batch
from trustmesh.log.tiles import TileKey

FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (id INTEGER PRIMARY KEY, nodes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY, did TEXT NOT NULL UNIQUE, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS device_entries (
    device INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (device, seq)) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('size', 0), ('format', 1);
"""


# SQLite integers are signed 64-bit; seqs go up to 2^64 - 1. Stored shifted
# down by 2^63, they keep their order, so MAX() and lookups still work.
SEQ_OFFSET = 1 << 63


def tile_id(key: TileKey) -> int:
    level, index = key
    return level << 48 | index


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_dir(path.parent)
            self._writer = self._connect()
            # Larger pages suit the store's rows: bundles and tiles of 16-50 KB.
            self._writer.execute("PRAGMA page_size = 16384")
            self._writer.execute("PRAGMA journal_mode = WAL")
            self._writer.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the log store {path}: {exc}") from None
        fmt = self._writer.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0]
        if fmt != FORMAT:
            raise StoreError(f"{path}: store format {fmt}, this trustmesh reads {FORMAT}")
        self._lock = threading.Lock()
        self._local = threading.local()
        self._device_ids: dict[str, int] = {}

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        # FULL: a committed batch survives power loss too, not only a crash.
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    @property
    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def _one(self, query: str, params: tuple[object, ...] = ()) -> Any:
        """The first column of the first row, or None; errors become StoreError."""
        try:
            row = self._reader.execute(query, params).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None
        return None if row is None else row[0]

    def size(self) -> int:
        return int(self._one("SELECT value FROM meta WHERE key = 'size'"))

    def commit(self, batch: Batch) -> None:
        with self._lock, self._transaction() as db:
            size = db.execute("SELECT value FROM meta WHERE key = 'size'").fetchone()[0]
            if size != batch.first_index:
                raise StoreError(
                    f"another writer appended to {self.path} (size {size}, "
                    f"expected {batch.first_index})"
                )
            db.executemany(
                "INSERT OR REPLACE INTO bundles (idx, data) VALUES (?, ?)",
                list(batch.bundles.items()),
            )
            new_ids = self._index_devices(db, batch)
            db.executemany(
                "INSERT OR REPLACE INTO tiles (id, nodes) VALUES (?, ?)",
                [(tile_id(key), nodes) for key, nodes in batch.tiles.items()],
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'size'", (batch.new_size,))
        self._device_ids.update(new_ids)

    def _index_devices(self, db: sqlite3.Connection, batch: Batch) -> dict[str, int]:
        new_ids: dict[str, int] = {}
        rows = []
        for index, key in enumerate(batch.keys, start=batch.first_index):
            if key is None:
                continue
            device = self._device_ids.get(key.did) or new_ids.get(key.did)
            if device is None:
                found = db.execute("SELECT id FROM devices WHERE did = ?", (key.did,)).fetchone()
                if found is None:
                    cursor = db.execute(
                        "INSERT INTO devices (did, last_seq) VALUES (?, ?)",
                        (key.did, key.seq - SEQ_OFFSET),
                    )
                    assert cursor.lastrowid is not None
                    found = (cursor.lastrowid,)
                device = new_ids[key.did] = int(found[0])
            rows.append((device, key.seq - SEQ_OFFSET, index))
        try:
            db.executemany("INSERT INTO device_entries (device, seq, idx) VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            raise DuplicateEntry("a (did, seq) in this batch is already logged") from None
        highest: dict[int, int] = {}  # one update per device, not per entry
        for device, seq, _ in rows:
            highest[device] = max(seq, highest.get(device, seq))
        db.executemany(
            "UPDATE devices SET last_seq = MAX(last_seq, ?) WHERE id = ?",
            [(seq, device) for device, seq in highest.items()],
        )
        return new_ids

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._writer
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            # (SQLite may have rolled back already: a full disk, an I/O error)
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):  # a full disk, an I/O error: say so
                raise StoreError(f"log store {self.path}: append failed: {exc}") from None
            raise

    def tile(self, key: TileKey) -> bytes | None:
        found = self._one("SELECT nodes FROM tiles WHERE id = ?", (tile_id(key),))
        return None if found is None else bytes(found)

    def bundle(self, index: int) -> bytes | None:
        found = self._one("SELECT data FROM bundles WHERE idx = ?", (index,))
        return None if found is None else bytes(found)

    def find(self, did: str, seq: int) -> int | None:
        found = self._one(
            "SELECT e.idx FROM device_entries e JOIN devices d ON d.id = e.device "
            "WHERE d.did = ? AND e.seq = ?",
            (did, seq - SEQ_OFFSET),
        )
        return None if found is None else int(found)

    def device_entries(self, did: str, limit: int) -> list[tuple[int, int]]:
        try:
            rows = self._reader.execute(
                "SELECT e.seq, e.idx FROM device_entries e JOIN devices d ON d.id = e.device "
                "WHERE d.did = ? ORDER BY e.seq DESC LIMIT ?",
                (did, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None
        return [(int(seq) + SEQ_OFFSET, int(index)) for seq, index in rows]

    def last_seq(self, did: str) -> int | None:
        found = self._one("SELECT last_seq FROM devices WHERE did = ?", (did,))
        return None if found is None else int(found) + SEQ_OFFSET

    def disk_bytes(self) -> int:
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    def close(self) -> None:
        self._writer.close()
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
