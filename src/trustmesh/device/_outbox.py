"""A small durable queue of readings not yet receipted (SQLite, WAL, fsync'd).

A reading goes in before it is sent and comes out only with the receipt that
acknowledges it, so a crash, a reboot or a dead node loses nothing: what is
still in the outbox is sent again (a node answers a repeat with the original
receipt).
"""

from __future__ import annotations

import threading
from pathlib import Path

from trustmesh._durable import open_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER NOT NULL, origin TEXT NOT NULL, note TEXT NOT NULL, PRIMARY KEY (seq, origin));
"""


class Outbox:
    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path, _SCHEMA)
        self._lock = threading.Lock()

    def put(self, seq: int, entry: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO outbox VALUES (?, ?)", (seq, entry))

    def pending(self, limit: int = 1000) -> list[tuple[int, bytes]]:
        """The oldest readings still waiting for a receipt, in seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, entry FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(int(seq), bytes(entry)) for seq, entry in rows]

    def acknowledge(self, seq: int, origin: str, note: str) -> None:
        """Keep the receipt and drop the reading from the queue, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)", (seq, origin, note)
                )
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def receipts(self) -> dict[int, tuple[str, str]]:
        """seq → (origin, signed receipt) of every acknowledged reading."""
        with self._lock:
            rows = self._db.execute("SELECT seq, origin, note FROM receipts").fetchall()
        return {int(seq): (origin, note) for seq, origin, note in rows}

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
