"""Across every log a watcher follows, one device's (did, seq) names one payload.

A second payload under a seq already seen is *equivocation*, with both entries
as evidence; within one log a device's seqs only grow (a lower one is a replay
the node should have refused: *seq-order*).

The index grows with every reading watched, so it lives in SQLite (a file in
the watcher's mirror directory; in memory for tests), keyed by (did, seq) with
the SHA-256 of the payload and where it was first seen. The first entry itself
is read back, when needed as evidence, from the mirror of the log that holds it
(``entry_at``). What stays in memory grows with devices, not readings: the last
seq per (log, device), and the highest seq per device (a reading above it needs
no lookup).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from trustmesh.errors import InvalidReading
from trustmesh.reading import Reading, parse_reading
from trustmesh.watcher.audit import Finding

__all__ = ["SeqIndex"]

EntryAt = Callable[[str, int], bytes]  # (origin, index) → the entry a log holds there

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    did TEXT NOT NULL, seq BLOB NOT NULL, digest BLOB NOT NULL, origin TEXT NOT NULL,
    idx INTEGER NOT NULL, PRIMARY KEY (did, seq)) WITHOUT ROWID;
"""


class SeqIndex:
    def __init__(self, entry_at: EntryAt, path: Path | None = None) -> None:
        self._entry_at = entry_at
        # A working index, rebuilt by every run: no journal, no fsync.
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path),
            isolation_level=None,
            check_same_thread=False,
        )
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], int] = {}  # (origin, did) → the last seq logged
        self._highest: dict[str, int] = {}  # did → the highest seq recorded, on any log

    def observe(self, entry: bytes, origin: str, index: int) -> Finding | None:
        """Record one logged reading; a Finding when its device signed another payload
        under the same seq (the two entries are the evidence)."""
        found = self.observe_batch([entry], origin, index)
        return found[0] if found else None

    def observe_batch(
        self,
        entries: list[bytes],
        origin: str,
        start: int,
        readings: list[Reading | None] | None = None,
    ) -> list[Finding]:
        """Record the entries ``start…`` of one log (one transaction); the Findings.
        ``readings``: the entries already parsed (None where one does not parse)."""
        findings: list[Finding] = []
        batch: dict[tuple[str, bytes], tuple[bytes, int, bytes]] = {}  # key → digest, idx, entry
        if readings is None:
            readings = [_parsed(entry) for entry in entries]
        with self._lock:
            for index, (entry, reading) in enumerate(zip(entries, readings, strict=True), start):
                if reading is None:
                    continue  # audit_entry reports it
                finding = self._observe(entry, reading, origin, index, batch)
                if finding is not None:
                    findings.append(finding)
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?)",
                ((did, seq, digest, origin, idx) for (did, seq), (digest, idx, _) in batch.items()),
            )
            self._db.execute("COMMIT")
        return findings

    def _observe(
        self,
        entry: bytes,
        reading: Reading,
        origin: str,
        index: int,
        batch: dict[tuple[str, bytes], tuple[bytes, int, bytes]],
    ) -> Finding | None:
        last = self._last.get((origin, reading.did))
        if last is not None and reading.seq < last:
            return Finding(
                "seq-order",
                origin,
                f"#{index}: {reading.did} seq {reading.seq} logged after seq {last} (a replay)",
                (entry,),
                index,
            )
        self._last[(origin, reading.did)] = reading.seq
        key = (reading.did, reading.seq.to_bytes(8, "big"))  # seqs reach 2^64 - 1
        digest = hashlib.sha256(reading.payload).digest()
        earlier = batch.get(key)
        if earlier is not None:
            first_digest, first_origin, first_index = earlier[0], origin, earlier[1]
            first: bytes | None = earlier[2]
        else:
            # A seq above every seq of this device seen on any log is new: no lookup
            # (the common case; failover retries and equivocations are not above).
            new = reading.seq > self._highest.get(reading.did, -1)
            row = (
                None
                if new
                else self._db.execute(
                    "SELECT digest, origin, idx FROM seen WHERE did = ? AND seq = ?", key
                ).fetchone()
            )
            if row is None:
                batch[key] = (digest, index, entry)
                self._highest[reading.did] = max(reading.seq, self._highest.get(reading.did, -1))
                return None
            first_digest, first_origin, first_index = bytes(row[0]), str(row[1]), int(row[2])
            first = None
        if first_digest == digest:
            return None  # the same reading, logged again (a failover retry)
        if first is None:
            first = self._entry_at(first_origin, first_index)
        return Finding(
            "equivocation",
            origin,
            f"{reading.did} seq {reading.seq}: {first_origin}#{first_index} and {origin}#{index}",
            (first, entry),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _parsed(entry: bytes) -> Reading | None:
    try:
        return parse_reading(entry)
    except InvalidReading:
        return None
