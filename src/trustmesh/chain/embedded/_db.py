"""py-evm's key-value database, kept in one SQLite file, crash-safe per block.

py-evm writes state, trie nodes, blocks and the head pointer through many
small atomic batches. Committed one by one to disk they could tear on a
crash (a head pointing at a block whose state was never written). So every
write is kept in memory until :meth:`BufferedSqliteDB.flush`, which the chain
calls once a block is mined, and which commits everything in one SQLite
transaction (WAL, fsync'd). After a crash the file holds the last fully
mined block and its state; reads see the buffer first, then the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from eth.db.backends.base import BaseDB

_DELETED = None


class BufferedSqliteDB(BaseDB):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) "
            "WITHOUT ROWID"
        )
        self._pending: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[bytes(key)] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[bytes(key)] = _DELETED

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("the chain database is not iterable")

    def __len__(self) -> int:
        raise NotImplementedError("the chain database has no cheap length")

    def flush(self) -> None:
        """Commit every buffered write in one durable transaction."""
        if not self._pending:
            return
        writes = [(k, v) for k, v in self._pending.items() if v is not _DELETED]
        deletes = [(k,) for k, v in self._pending.items() if v is _DELETED]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", writes)
            self._db.executemany("DELETE FROM kv WHERE key = ?", deletes)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._pending.clear()

    def discard(self) -> None:
        """Forget buffered writes (they belong to a block that was never mined)."""
        self._pending.clear()

    def close(self) -> None:
        self._db.close()

    def size_bytes(self) -> int:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())
