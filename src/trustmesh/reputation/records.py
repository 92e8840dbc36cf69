"""Where an :class:`~trustmesh.reputation.observe.Observer` keeps the readings of
open epochs until they close: 48 packed bytes a reading (seq, ts, leaf hash),
per epoch and device, in the order seen.

:class:`MemoryRecords` keeps them in memory: enough for a recomputation, which
closes each epoch as soon as its cut is fed. A node keeps an epoch open for as
long as the epoch lasts, and a busy log puts millions of readings in one:
:class:`SpilledRecords` holds at most ``buffer_bytes`` of them in memory and
spills the rest to a scratch SQLite file, read back one device at a time when
the epoch closes, so the node's memory does not grow with the epoch.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from trustmesh.errors import StoreError

__all__ = ["MemoryRecords", "Records", "SpilledRecords"]


class Records(Protocol):
    def add(self, epoch: int, did: str, record: bytes) -> None:
        """Packed records (one or more readings', in order) of ``did`` in ``epoch``."""

    def epochs(self) -> list[int]:
        """The epochs that hold records, oldest first."""

    def devices(self, epoch: int) -> Iterator[tuple[str, bytes]]:
        """Each device of ``epoch`` with its records in the order added, by DID."""

    def forget(self, epoch: int) -> None:
        """Drop ``epoch``'s records."""


class MemoryRecords:
    def __init__(self) -> None:
        self._epochs: dict[int, dict[str, bytearray]] = {}

    def add(self, epoch: int, did: str, record: bytes) -> None:
        devices = self._epochs.setdefault(epoch, {})
        held = devices.get(did)
        if held is None:
            held = devices[did] = bytearray()
        held += record

    def epochs(self) -> list[int]:
        return sorted(self._epochs)

    def devices(self, epoch: int) -> Iterator[tuple[str, bytes]]:
        for did, held in sorted(self._epochs.get(epoch, {}).items()):
            yield did, bytes(held)

    def forget(self, epoch: int) -> None:
        self._epochs.pop(epoch, None)


class SpilledRecords:
    """Records in memory up to ``buffer_bytes``, then in the scratch file ``path``
    (made anew: what it held is rebuilt from the log after a restart). Used from
    one thread at a time.

    A write that fails (a full disk) raises :class:`StoreError` and loses
    nothing: the records stay in memory, and the next add tries again. Forgetting
    an epoch never fails: rows it could not delete are deleted later (before the
    epoch is added to again; no one reads a forgotten epoch)."""

    def __init__(self, path: Path, buffer_bytes: int = 8 << 20) -> None:
        self.path, self.buffer_bytes = path, buffer_bytes
        path.unlink(missing_ok=True)
        with self._sqlite("making"):
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            path.chmod(0o600)
            self._db.executescript(
                """
                PRAGMA journal_mode = OFF;
                PRAGMA synchronous = OFF;
                CREATE TABLE spilled (
                    epoch INTEGER NOT NULL, did TEXT NOT NULL, data BLOB NOT NULL
                );
                CREATE INDEX spilled_epoch ON spilled (epoch, did);
                """
            )
        self._memory = MemoryRecords()
        self._buffered = 0
        self._epochs: set[int] = set()
        self._forgotten: set[int] = set()  # epochs whose spilled rows are still to delete

    @contextlib.contextmanager
    def _sqlite(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{what} the reputation scratch file {self.path}: {exc}") from None

    def add(self, epoch: int, did: str, record: bytes) -> None:
        if epoch in self._forgotten:  # an epoch again whose old rows are still there
            self._delete_forgotten()
        self._memory.add(epoch, did, record)
        self._epochs.add(epoch)
        self._buffered += len(record)
        if self._buffered >= self.buffer_bytes:
            self._spill()

    def _spill(self) -> None:
        rows = [
            (epoch, did, held)
            for epoch in self._memory.epochs()
            for did, held in self._memory.devices(epoch)
        ]
        with self._sqlite("writing"):
            self._db.executemany("INSERT INTO spilled VALUES (?, ?, ?)", rows)
        self._memory = MemoryRecords()
        self._buffered = 0

    def epochs(self) -> list[int]:
        return sorted(self._epochs)

    def devices(self, epoch: int) -> Iterator[tuple[str, bytes]]:
        self._spill()
        with self._sqlite("reading"):  # a device at a time: an epoch may hold millions
            rows = self._db.execute(
                "SELECT did, data FROM spilled WHERE epoch = ? ORDER BY did, rowid", (epoch,)
            )
            for did, chunks in itertools.groupby(rows, key=lambda row: str(row[0])):
                yield did, b"".join(bytes(chunk) for _, chunk in chunks)

    def forget(self, epoch: int) -> None:
        self._memory.forget(epoch)
        self._buffered = sum(
            len(held) for kept in self._memory.epochs() for _, held in self._memory.devices(kept)
        )
        self._epochs.discard(epoch)
        self._forgotten.add(epoch)
        with contextlib.suppress(StoreError):  # left for later: no read asks for it
            self._delete_forgotten()

    def _delete_forgotten(self) -> None:
        forgotten = sorted(self._forgotten)
        with self._sqlite("deleting from"):
            self._db.executemany(
                "DELETE FROM spilled WHERE epoch = ?", [(epoch,) for epoch in forgotten]
            )
        self._forgotten.clear()

    def close(self) -> None:
        self._db.close()
