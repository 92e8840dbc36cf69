"""What a storage backend provides to the log store: durable rows, nothing more.

The tree logic (tiles, proofs) lives in :mod:`trustmesh.log.tiles` and the
store; a backend only keeps bytes, and commits one batch atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from trustmesh.log.tiles import TileKey


class DeviceKey(NamedTuple):
    """The per-device index key of an entry: the device DID and its seq. (A named
    tuple: a node makes one per reading, and a tuple is made at a third of the
    cost of a frozen dataclass.)"""

    did: str
    seq: int


@dataclass(frozen=True)
class Batch:
    """Everything one append writes, in one transaction: the entry bundles and
    tiles it created or grew, the per-device keys, and the new size."""

    first_index: int
    new_size: int
    bundles: Mapping[int, bytes]
    keys: Sequence[DeviceKey | None]
    tiles: Mapping[TileKey, bytes]


class Backend(Protocol):
    """A durable home for the log's rows (SQLite or PostgreSQL)."""

    def size(self) -> int:
        """The committed tree size."""
        ...

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` atomically and durably, if the committed size is still
        ``batch.first_index``; otherwise raise :class:`~trustmesh.errors.StoreError`
        (another writer got there first) and write nothing. A (did, seq) already
        present raises :class:`~trustmesh.errors.DuplicateEntry`, also writing nothing."""
        ...

    def tile(self, key: TileKey) -> bytes | None:
        """The stored tile ``key`` (all its rows), if any."""
        ...

    def bundle(self, index: int) -> bytes | None:
        """Entry bundle ``index`` (entries ``index·256 …``), as stored."""
        ...

    def find(self, did: str, seq: int) -> int | None:
        """The index of the entry logged for (did, seq), if any."""
        ...

    def device_entries(self, did: str, limit: int) -> list[tuple[int, int]]:
        """(seq, index) of the device's entries, highest seq first."""
        ...

    def last_seq(self, did: str) -> int | None:
        """The highest seq logged for ``did``, if any."""
        ...

    def disk_bytes(self) -> int:
        """Bytes the store occupies on disk (for benchmarks and metrics)."""
        ...

    def close(self) -> None: ...
