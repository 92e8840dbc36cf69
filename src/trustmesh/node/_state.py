"""The node's own bookkeeping, beside the log: equivocation evidence, where each
reputation epoch was cut, the best payment voucher of each channel (kept before
the readings it paid for are served, until it is settled), and a few settings
(the log's origin).

It lives in ``<data dir>/node.db`` (SQLite, WAL). The log itself (which may be
PostgreSQL) stays the only home of entries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustmesh._durable import open_sqlite

_SCHEMA = """
DROP TABLE IF EXISTS batches;
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, did TEXT NOT NULL, seq TEXT NOT NULL, logged_index INTEGER NOT NULL,
    logged_entry BLOB NOT NULL, conflicting_entry BLOB NOT NULL, received_at INTEGER NOT NULL,
    UNIQUE (did, seq, conflicting_entry));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reputation_cuts (epoch INTEGER PRIMARY KEY, cut TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vouchers (
    channel TEXT PRIMARY KEY, amount TEXT NOT NULL, signature BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Evidence:
    """Two readings signed by one device with the same seq and different payloads."""

    did: str
    seq: int
    logged_index: int
    logged_entry: bytes
    conflicting_entry: bytes
    received_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "seq": self.seq,
            "logged_index": self.logged_index,
            "logged_entry": self.logged_entry.hex(),
            "conflicting_entry": self.conflicting_entry.hex(),
            "received_at": self.received_at,
        }


class NodeState:
    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path, _SCHEMA)
        self._lock = threading.Lock()

    def add_evidence(self, evidence: Evidence) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO evidence (did, seq, logged_index, logged_entry, "
                "conflicting_entry, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    evidence.did,
                    str(evidence.seq),
                    evidence.logged_index,
                    evidence.logged_entry,
                    evidence.conflicting_entry,
                    evidence.received_at,
                ),
            )

    def evidence(self, limit: int = 1000, after_id: int = 0) -> list[tuple[int, Evidence]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, did, seq, logged_index, logged_entry, conflicting_entry, received_at "
                "FROM evidence WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [
            (row[0], Evidence(row[1], int(row[2]), row[3], bytes(row[4]), bytes(row[5]), row[6]))
            for row in rows
        ]

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def add_cut(self, epoch: int, cut: str) -> None:
        """Record where reputation epoch ``epoch`` was cut (JSON), before it is served."""
        with self._lock:
            self._db.execute("INSERT INTO reputation_cuts (epoch, cut) VALUES (?, ?)", (epoch, cut))

    def cuts(self) -> list[str]:
        """Every recorded cut, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT cut FROM reputation_cuts ORDER BY epoch").fetchall()
        return [str(row[0]) for row in rows]

    def keep_voucher(self, channel: int, amount: int, signature: bytes) -> None:
        """Record ``channel``'s best voucher (cumulative ``amount``), durably."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO vouchers (channel, amount, signature) VALUES (?, ?, ?)",
                (str(channel), str(amount), signature),
            )

    def vouchers(self) -> list[tuple[int, int, bytes]]:
        """Every channel's best voucher: (channel, amount, signature)."""
        with self._lock:
            rows = self._db.execute("SELECT channel, amount, signature FROM vouchers").fetchall()
        return [(int(row[0]), int(row[1]), bytes(row[2])) for row in rows]

    def close(self) -> None:
        self._db.close()
