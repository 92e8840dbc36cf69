"""The SQLite store's per-device index, (did, seq) → entry index, written in bulk.

A device's seqs rise (a node logs no seq at or below the device's last), so its
keys come in runs. Each batch's rising keys are written with it, in its
transaction, as one row of packed integers in ``pending_keys``: an append at that
table's end. Once ``index_every`` keys wait there, they move into ``device_runs``,
one row per device (its keys of the whole wait, packed and sorted), in the
transaction of the batch that reached the mark. A key that does not rise (a
store's caller may log a lower seq it never logged) goes into ``device_entries``,
one row per key, at once.

A row per key in a (device, seq) B-tree, written every batch, cost more than the
rest of an append, and more as the log grew, once the tree had more pages than
the fleet has devices: each batch then rewrote a page per device. In
``benchmarks/log.py`` (10^6 entries from 100 devices, batches of 1,000) that
append ran at 0.31 of the rate of an unindexed one, and its last 10^4 entries at
98,517 a second against 276,730 for its first; this way, at 0.66, with its last
10^4 at 336,452 a second.

The index is exact at every commit: lookups read the pending rows, then the
runs, then ``device_entries``. A move takes keys from the first to the second,
never back, so a lookup that reads them in that order never misses a key,
whichever commits between its reads. A duplicate key is refused in the
transaction that would add it: a rising key cannot be one, and any other is
looked up.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable
from contextlib import closing

from trustmesh.errors import DuplicateEntry
from trustmesh.log.store._backend import Batch

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_keys (first INTEGER PRIMARY KEY, keys BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS device_runs (
    device INTEGER NOT NULL, first_seq INTEGER NOT NULL, keys BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS device_runs_by_seq ON device_runs (device, first_seq);
"""

# SQLite integers are signed 64-bit; seqs go up to 2^64 - 1. Stored shifted
# down by 2^63, they keep their order, so MAX() and lookups still work.
SEQ_OFFSET = 1 << 63
INDEX_EVERY = 8192  # pending keys that move into runs together

Row = tuple[int, int, int]  # (device id, shifted seq, entry index)
Pending = dict[tuple[int, int], int]  # one pending row: (device id, shifted seq) → index


def _pack_rows(rows: list[Row]) -> bytes:
    return array("q", [value for row in rows for value in row]).tobytes()


def _unpack_rows(blob: bytes) -> list[Row]:
    values = array("q", blob)
    return list(zip(values[0::3], values[1::3], values[2::3], strict=True))


def _pack_run(seqs: list[int], indices: list[int]) -> bytes:
    """A run: its seqs (rising), then their indices."""
    return array("q", seqs + indices).tobytes()


def _unpack_run(blob: bytes) -> tuple[array[int], array[int]]:
    values = array("q", blob)
    half = len(values) // 2
    return values[:half], values[half:]


class DeviceIndex:
    """The index of one SQLite store: written by its writer connection inside the
    store's commits, read through any connection."""

    def __init__(self, writer: sqlite3.Connection, index_every: int | None = None) -> None:
        index_every = INDEX_EVERY if index_every is None else index_every
        if index_every < 1:
            raise ValueError("index_every must be at least 1")
        self._index_every = index_every
        self._ids: dict[str, int] = {}  # the writer's: did → device id
        self._last: dict[int, int] = {}  # the writer's: device id → last seq, shifted
        (blob_bytes,) = writer.execute(
            "SELECT COALESCE(SUM(LENGTH(keys)), 0) FROM pending_keys"
        ).fetchone()
        self._waiting = int(blob_bytes) // 24  # keys in pending_keys (three int64 each)
        self._decoded: dict[int, Pending] = {}  # pending rows read so far, by first index
        self._lock = threading.Lock()

    def write(self, db: sqlite3.Connection, batch: Batch) -> Callable[[], None]:
        """Index ``batch``'s keys in the commit's open transaction on ``db``; raise
        :class:`DuplicateEntry` if one is logged already. Returns what to call once
        that transaction has committed (the writer's caches follow it then)."""
        new_ids: dict[str, int] = {}
        tops: dict[int, int] = {}  # device → highest seq, logged or in this batch
        rising: list[Row] = []
        lower: list[Row] = []  # keys at or below their device's last seq
        in_batch: set[tuple[int, int]] | None = None  # made when a seq does not rise
        known, last = self._ids, self._last
        for index, key in enumerate(batch.keys, start=batch.first_index):
            if key is None:
                continue
            did, seq = key
            seq -= SEQ_OFFSET
            device = known.get(did) or new_ids.get(did)
            if device is None:
                device, logged = self._device(db, did)
                new_ids[did] = device
                if logged is not None:
                    tops[device] = logged
            top = tops.get(device)
            if top is None:
                top = last.get(device)
            if top is None or seq > top:  # a device's seqs rise: the node's case
                tops[device] = seq
                rising.append((device, seq, index))
            else:
                if in_batch is None:
                    in_batch = {(d, s) for d, s, _ in rising + lower}
                if (device, seq) in in_batch or self._lookup(db, device, seq) is not None:
                    raise DuplicateEntry("a (did, seq) in this batch is already logged")
                lower.append((device, seq, index))
            if in_batch is not None:
                in_batch.add((device, seq))
        db.executemany("INSERT INTO device_entries (device, seq, idx) VALUES (?, ?, ?)", lower)
        waiting = self._waiting + len(rising)
        if waiting >= self._index_every:
            self._move(db, rising)
            waiting = 0
        elif rising:
            db.execute(
                "INSERT INTO pending_keys (first, keys) VALUES (?, ?)",
                (batch.first_index, _pack_rows(rising)),
            )
        raised = {device: seq for device, seq, _ in rising}  # (each device's last)
        db.executemany(
            "UPDATE devices SET last_seq = ? WHERE id = ?",
            [(seq, device) for device, seq in raised.items()],
        )

        def committed() -> None:
            self._ids.update(new_ids)
            self._last.update(tops)
            self._waiting = waiting

        return committed

    def find(self, db: sqlite3.Connection, did: str, seq: int) -> int | None:
        device = self._device_id(db, did)
        return None if device is None else self._lookup(db, device, seq - SEQ_OFFSET)

    def entries(self, db: sqlite3.Connection, did: str, limit: int) -> list[tuple[int, int]]:
        """(seq, index) of ``did``'s last ``limit`` entries, highest seq first."""
        device = self._device_id(db, did)
        if device is None:
            return []
        found = {
            seq: index
            for pending in self._pending(db)
            for (owner, seq), index in pending.items()
            if owner == device
        }
        in_runs = 0
        with closing(
            db.execute(
                "SELECT keys FROM device_runs WHERE device = ? ORDER BY first_seq DESC", (device,)
            )
        ) as runs:  # (closed when left early: no read transaction stays open)
            for (blob,) in runs:  # the runs, newest first, until ``limit`` keys
                if in_runs >= limit:
                    break
                seqs, indices = _unpack_run(blob)
                found.update(zip(seqs, indices, strict=True))
                in_runs += len(seqs)
        found.update(
            db.execute(
                "SELECT seq, idx FROM device_entries WHERE device = ? ORDER BY seq DESC LIMIT ?",
                (device, limit),
            ).fetchall()
        )
        top = sorted(found.items(), reverse=True)[:limit]
        return [(int(seq) + SEQ_OFFSET, int(index)) for seq, index in top]

    def _lookup(self, db: sqlite3.Connection, device: int, seq: int) -> int | None:
        for pending in self._pending(db):  # first: a move takes keys from here to the runs
            index = pending.get((device, seq))
            if index is not None:
                return index
        run = db.execute(
            "SELECT keys FROM device_runs WHERE device = ? AND first_seq <= ? "
            "ORDER BY first_seq DESC LIMIT 1",
            (device, seq),
        ).fetchone()
        if run is not None:  # the one run that may hold it: runs never overlap
            seqs, indices = _unpack_run(run[0])
            at = bisect_left(seqs, seq)
            if at < len(seqs) and seqs[at] == seq:
                return int(indices[at])
        row = db.execute(
            "SELECT idx FROM device_entries WHERE device = ? AND seq = ?", (device, seq)
        ).fetchone()
        return None if row is None else int(row[0])

    def _pending(self, db: sqlite3.Connection) -> list[Pending]:
        """The pending rows as this connection sees them (each decoded once: a row
        never changes, it is only deleted when its keys move)."""
        firsts = [first for (first,) in db.execute("SELECT first FROM pending_keys")]
        with self._lock:
            known = {first: self._decoded[first] for first in firsts if first in self._decoded}
        for first in firsts:
            if first not in known:
                row = db.execute("SELECT keys FROM pending_keys WHERE first = ?", (first,))
                blob = row.fetchone()
                if blob is not None:  # (else moved meanwhile: the runs have them)
                    known[first] = {(d, s): i for d, s, i in _unpack_rows(blob[0])}
        with self._lock:
            self._decoded = known  # rows moved since are forgotten
        return list(known.values())

    def _move(self, db: sqlite3.Connection, rows: list[Row]) -> None:
        """Move every pending key, and ``rows``, into runs: one per device, its
        keys in the order they were logged, which is rising."""
        runs: dict[int, tuple[list[int], list[int]]] = {}
        stored = db.execute("SELECT keys FROM pending_keys ORDER BY first")
        for row in [row for (blob,) in stored for row in _unpack_rows(blob)] + rows:
            device, seq, index = row
            run = runs.get(device)
            if run is None:
                run = runs[device] = ([], [])
            run[0].append(seq)
            run[1].append(index)
        db.executemany(
            "INSERT INTO device_runs (device, first_seq, keys) VALUES (?, ?, ?)",
            [
                (device, seqs[0], _pack_run(seqs, indices))
                for device, (seqs, indices) in runs.items()
            ],
        )
        db.execute("DELETE FROM pending_keys")

    def _device(self, db: sqlite3.Connection, did: str) -> tuple[int, int | None]:
        """The device's id and last seq (shifted), adding it if new (last: None)."""
        found = db.execute("SELECT id, last_seq FROM devices WHERE did = ?", (did,)).fetchone()
        if found is not None:
            return int(found[0]), int(found[1])
        cursor = db.execute("INSERT INTO devices (did, last_seq) VALUES (?, ?)", (did, -SEQ_OFFSET))
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid), None

    @staticmethod
    def _device_id(db: sqlite3.Connection, did: str) -> int | None:
        found = db.execute("SELECT id FROM devices WHERE did = ?", (did,)).fetchone()
        return None if found is None else int(found[0])
