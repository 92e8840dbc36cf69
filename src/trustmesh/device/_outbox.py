"""A small durable queue of readings not yet receipted (SQLite, WAL, fsync'd).

A reading goes in before it is sent and comes out only with the receipt that
acknowledges it, so a crash, a reboot or a dead node loses nothing: what is
still in the outbox is sent again (a node answers a repeat with the original
receipt). A reading a node refuses for good (its bytes can never be logged
there: a bad signature, a replayed or equivocating seq, a revoked device)
moves to the refused table with the node's answer, so it neither blocks the
readings behind it nor is lost from view.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from trustmesh._durable import open_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER NOT NULL, origin TEXT NOT NULL, note TEXT NOT NULL, PRIMARY KEY (seq, origin));
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY, entry BLOB NOT NULL, node TEXT NOT NULL, type TEXT NOT NULL,
    detail TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Refusal:
    """A reading a node refused for good, and why (its problem type and detail)."""

    seq: int
    entry: bytes
    node: str
    type: str
    detail: str


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

    def acknowledge(self, seq: int, origin: str, receipt: str) -> None:
        """Keep the receipt (its tlog-proof) and drop the reading from the queue, in
        one transaction."""
        self._take(seq, "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)", (seq, origin, receipt))

    def refuse(self, seq: int, node: str, problem_type: str, detail: str) -> None:
        """Move a reading a node refused for good out of the queue, with the refusal."""
        self._take(
            seq,
            "INSERT OR REPLACE INTO refused SELECT seq, entry, ?, ?, ? FROM outbox WHERE seq = ?",
            (node, problem_type, detail, seq),
        )

    def _take(self, seq: int, record: str, parameters: tuple[object, ...]) -> None:
        """Run ``record`` (what became of the reading) and drop the reading from the
        queue, in one transaction: both happen, or neither."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(record, parameters)
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def refused(self) -> list[Refusal]:
        """Every reading refused for good, in seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, entry, node, type, detail FROM refused ORDER BY seq"
            ).fetchall()
        return [Refusal(int(r[0]), bytes(r[1]), r[2], r[3], r[4]) for r in rows]

    def receipts(self) -> dict[int, tuple[str, str]]:
        """seq → (origin, receipt: its tlog-proof) of every acknowledged reading."""
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
