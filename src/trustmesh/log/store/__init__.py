"""The persistent append-only log: entries, their Merkle tree, proofs, and a
per-device index.

>>> import tempfile, pathlib
>>> from trustmesh.log import merkle
>>> store = open_store(pathlib.Path(tempfile.mkdtemp()) / "log.db")
>>> store.append([b"first", b"second", b"third"])
[0, 1, 2]
>>> proof = store.inclusion_proof(1, 3)
>>> merkle.verify_inclusion(merkle.leaf_hash(b"second"), 1, 3, proof, store.root(3))

An append of a batch is one transaction: when ``append`` returns, the whole
batch is durable (it survives a SIGKILL or a power cut), and when it raises,
none of it was written. An append costs amortised O(1) hashes; a proof reads
O(log n) stored hashes. Two backends: SQLite (a path) and PostgreSQL (a
``postgresql://`` URL). One writer per store: a second process appending to
the same store is detected and refused, never interleaved.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from pathlib import Path

from trustmesh.errors import CommitUncertain, StoreError
from trustmesh.log.bundles import BUNDLE_SIZE, MAX_ENTRY, decode_bundle, encode_bundle
from trustmesh.log.compact import CompactRange
from trustmesh.log.merkle import LEAF_PREFIX
from trustmesh.log.store._backend import Backend, Batch, DeviceKey
from trustmesh.log.store._sqlite import SqliteBackend
from trustmesh.log.tiles import RightEdge, TileKey, TreeReader, bottom_row, is_full

# (Backend, Batch and SqliteBackend: for a store over a backend of one's own, as
# tests that inject faults make)
__all__ = ["Backend", "Batch", "DeviceKey", "LogStore", "SqliteBackend", "open_store"]

MAX_SEQ = (1 << 64) - 1
FULL_TILE_CACHE = 4096  # full tiles never change: up to 64 MiB of them kept in memory


def open_store(location: str | Path) -> LogStore:
    """Open (creating if needed) the store at a SQLite path or a PostgreSQL URL."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        from trustmesh.log.store._postgres import PostgresBackend

        return LogStore(PostgresBackend(text))
    return LogStore(SqliteBackend(Path(text)))


@dataclass(frozen=True)
class _Uncertain:
    """An append whose commit got no answer: what adopting it takes."""

    new_size: int
    leaf_hashes: list[bytes]
    open_bundle: list[bytes]


class LogStore:
    """An RFC 9162 Merkle log over a durable :class:`Backend`."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._write_lock = threading.Lock()
        self._size = backend.size()
        self._full_tiles: OrderedDict[TileKey, bytes] = OrderedDict()
        self._uncertain: _Uncertain | None = None  # an append whose commit got no answer
        self._cache_lock = threading.Lock()
        try:
            self._edge = RightEdge(self._size, backend.tile)
            self._open_bundle = self._load_open_bundle()
        except (LookupError, ValueError) as exc:
            raise StoreError(f"the log store is damaged: {exc}") from None

    def _load_open_bundle(self) -> list[bytes]:
        """The entries of the last, partial, bundle: appends continue it."""
        index, width = divmod(self._size, BUNDLE_SIZE)
        if not width:
            return []
        stored = self._backend.bundle(index)
        entries = decode_bundle(stored) if stored is not None else []
        if len(entries) != width:
            raise LookupError(f"entry bundle {index} is missing or torn")
        return entries

    @property
    def size(self) -> int:
        """The number of entries durably committed."""
        return self._size

    def append(
        self,
        entries: Sequence[bytes],
        keys: Sequence[DeviceKey | None] | None = None,
        leaf_hashes: Sequence[bytes] | None = None,
    ) -> list[int]:
        """Append ``entries`` in one transaction; returns their indices.

        ``keys`` (one per entry, or None) index entries by (did, seq); a key
        already in the log raises :class:`~trustmesh.errors.DuplicateEntry`
        and nothing is appended. ``leaf_hashes``: the entries' RFC 9162 leaf
        hashes, when the caller has them already (each entry is hashed once).
        """
        if keys is None:
            keys = [None] * len(entries)
        if len(keys) != len(entries) or (
            leaf_hashes is not None and len(leaf_hashes) != len(entries)
        ):
            raise ValueError("keys and leaf hashes must match entries one to one")
        if any(key is not None and not 0 <= key.seq <= MAX_SEQ for key in keys):
            raise ValueError("a seq must be in 0..2^64-1")
        if not entries:
            return []
        if max(map(len, entries)) > MAX_ENTRY:
            raise ValueError(f"an entry is at most {MAX_ENTRY} bytes")
        with self._write_lock:
            self._settle()
            first = self._size
            rollback = self._edge.copy()
            if leaf_hashes is None:  # leaf_hash, inlined: this is the append's hot loop
                leaf_hashes = [_sha256(LEAF_PREFIX + entry).digest() for entry in entries]
            self._edge.push(list(leaf_hashes))
            bundles, open_bundle = self._bundles(first, entries)
            batch = Batch(
                first_index=first,
                new_size=first + len(entries),
                bundles=bundles,
                keys=list(keys),
                tiles=self._edge.take_dirty(),
            )
            try:
                self._backend.commit(batch)
            except CommitUncertain:
                self._edge = rollback
                self._uncertain = _Uncertain(batch.new_size, list(leaf_hashes), open_bundle)
                raise
            except BaseException:
                self._edge = rollback
                raise
            self._size, self._open_bundle = batch.new_size, open_bundle
            return list(range(first, batch.new_size))

    def settle(self) -> bool:
        """After :class:`CommitUncertain`: ask the backend whether that append
        landed, and adopt it if so (before any other append). Whether this store
        grew. :class:`StoreError` while the backend is still unreachable, or if it
        holds neither size (another writer)."""
        with self._write_lock:
            return self._settle()

    def _settle(self) -> bool:
        pending = self._uncertain
        if pending is None:
            return False
        size = self._backend.size()
        if size not in (self._size, pending.new_size):
            raise StoreError(
                f"the log store holds {size} entries, not {self._size} or {pending.new_size}: "
                "another writer appended to it"
            )
        self._uncertain = None
        if size == self._size:
            return False  # the append did not land
        self._edge.push(pending.leaf_hashes)
        self._edge.take_dirty()  # (its tiles are the ones that landed)
        self._size, self._open_bundle = pending.new_size, pending.open_bundle
        return True

    def _bundles(
        self, first: int, entries: Sequence[bytes]
    ) -> tuple[dict[int, bytes], list[bytes]]:
        """The bundles this append creates or grows, and the new open bundle."""
        pending = [*self._open_bundle, *entries]
        base = (first - len(self._open_bundle)) // BUNDLE_SIZE
        bundles = {
            base + i // BUNDLE_SIZE: encode_bundle(pending[i : i + BUNDLE_SIZE])
            for i in range(0, len(pending), BUNDLE_SIZE)
        }
        return bundles, pending[len(pending) - len(pending) % BUNDLE_SIZE :]

    def compact_range(self) -> CompactRange:
        """The compact range of the whole log (its perfect subtree roots), from the
        nodes the appends keep in memory: O(log n), nothing read from the backend."""
        with self._write_lock:
            return CompactRange.from_hashes(self._size, self._edge.compact(self._size))

    def entry(self, index: int) -> bytes:
        """The entry at ``index``, exactly as appended."""
        self._check_index(index, self._size)
        bundle, offset = divmod(index, BUNDLE_SIZE)
        return self._bundle_entries(bundle)[offset]

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start`` (inclusive) to ``end`` (exclusive)."""
        if not 0 <= start <= end <= self._size:
            raise StoreError(f"range {start}..{end} is outside the log of size {self._size}")
        found: list[bytes] = []
        for bundle in range(start // BUNDLE_SIZE, (end + BUNDLE_SIZE - 1) // BUNDLE_SIZE):
            base = bundle * BUNDLE_SIZE
            found.extend(self._bundle_entries(bundle)[max(start - base, 0) : end - base])
        return found

    def bundle(self, index: int) -> bytes | None:
        """The C2SP tlog-tiles entry bundle ``index`` as of now: full, or partial."""
        width = min(BUNDLE_SIZE, self._size - index * BUNDLE_SIZE)
        if index < 0 or width <= 0:
            return None
        return encode_bundle(self._bundle_entries(index)[:width])

    def _bundle_entries(self, index: int) -> list[bytes]:
        stored = self._backend.bundle(index)
        try:
            if stored is None:
                raise ValueError("missing")
            return decode_bundle(stored)
        except ValueError as exc:
            raise StoreError(f"entry bundle {index} is damaged: {exc}") from None

    def leaf_hash(self, index: int) -> bytes:
        self._check_index(index, self._size)
        return self._reader(self._size).leaf_hash(index)

    def root(self, size: int | None = None) -> bytes:
        """The Merkle Tree Hash of the first ``size`` entries (default: all)."""
        size = self._size if size is None else size
        self._check_size(size)
        return self._reader(size).root()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of ``index`` in the tree of ``size`` entries."""
        size = self._size if size is None else size
        self._check_size(size)
        self._check_index(index, size)
        return self._reader(size).inclusion_proof(index)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from ``old_size`` to ``new_size`` entries."""
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise StoreError(f"old size {old_size} is outside 0..{new_size}")
        return self._reader(new_size).consistency_proof(old_size)

    def tile(self, level: int, index: int) -> bytes | None:
        """The C2SP tlog-tiles tile (level, index) as of now: full, or partial."""
        if level < 0 or index < 0:
            return None
        count = self._size >> (8 * level)
        width = min(256, count - index * 256)
        if width <= 0:
            return None
        nodes = self._tile((level, index))
        return None if nodes is None else bottom_row(nodes, width)

    def find(self, did: str, seq: int) -> int | None:
        """The index of the entry logged for (did, seq), if any: one lookup."""
        if not 0 <= seq <= MAX_SEQ:
            return None
        return self._backend.find(did, seq)

    def device_entries(self, did: str, limit: int = 100) -> list[tuple[int, int]]:
        """The last ``limit`` (seq, index) pairs logged for ``did``, highest seq first."""
        return self._backend.device_entries(did, limit)

    def last_seq(self, did: str) -> int | None:
        """The highest seq logged for ``did``, if any: one lookup."""
        return self._backend.last_seq(did)

    def disk_bytes(self) -> int:
        return self._backend.disk_bytes()

    def close(self) -> None:
        self._backend.close()

    def _reader(self, size: int) -> TreeReader:
        return TreeReader(size, lambda key: self._tile(key, size))

    def _tile(self, key: TileKey, size: int | None = None) -> bytes | None:
        with self._cache_lock:
            cached = self._full_tiles.get(key)
            if cached is not None:
                self._full_tiles.move_to_end(key)
                return cached
        nodes = self._backend.tile(key)
        if nodes is not None and is_full(key, self._size if size is None else size):
            with self._cache_lock:
                self._full_tiles[key] = nodes
                if len(self._full_tiles) > FULL_TILE_CACHE:
                    self._full_tiles.popitem(last=False)
        return nodes

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise StoreError(f"size {size} is outside 0..{self._size}")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise StoreError(f"index {index} is outside the log of size {size}")
