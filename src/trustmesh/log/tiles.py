"""The tree's stored hashes, in tiles, and proofs computed from them.

The tree is cut into tiles of height 8, as in C2SP tlog-tiles: a tile at tile
level ``t`` and index ``N`` covers the 256 hashes ``N*256 … N*256+255`` at tree
level ``8t`` and everything above them up to (not including) tree level
``8t + 8``. Unlike a tlog-tiles tile, which keeps only its bottom row, a stored
tile keeps all its complete nodes, rows 0 to 7 (256 + 128 + … + 2 = 510 hashes),
so that any node of the tree is one slice of one tile: an inclusion or
consistency proof reads O(log n) hashes from O(log n / 8) tiles. The bottom
row of a stored tile *is* the tlog-tiles tile.

:class:`RightEdge` appends leaf hashes, computing each node once, when its
right child arrives: amortised one hash per leaf. :class:`TreeReader`
assembles roots and proofs (RFC 9162 §2.1) from nodes; it is tested against
the reference functions of :mod:`trustmesh.log.merkle`.
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256 as _sha256

from trustmesh.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    NODE_PREFIX,
    largest_power_of_two_below,
    node_hash,
)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
ROWS = TILE_HEIGHT  # rows 0..7; a full tile's top (tree level 8t+8) lives in the tile above
ROW_START = [2 * TILE_WIDTH - (2 * TILE_WIDTH >> k) for k in range(ROWS)]  # 0, 256, 384, …
NODES_PER_TILE = 2 * TILE_WIDTH - 2  # 510
TILE_BYTES = NODES_PER_TILE * HASH_SIZE

TileKey = tuple[int, int]  # (tile level, tile index)


def tile_index(n: int) -> str:
    """A tile index as a C2SP tlog-tiles path: 1234067 → ``x001/x234/067``."""
    digits = str(n)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def slot(row: int, position: int) -> int:
    """Byte offset of the node at ``row``, ``position`` (within its tile)."""
    return (ROW_START[row] + position) * HASH_SIZE


def locate(level: int, index: int) -> tuple[TileKey, int]:
    """The tile holding node (tree ``level``, ``index``) and its byte offset there."""
    tile_level, row = divmod(level, TILE_HEIGHT)
    per_tile = TILE_WIDTH >> row
    return (tile_level, index // per_tile), slot(row, index % per_tile)


def is_full(key: TileKey, size: int) -> bool:
    """Whether tile ``key`` is complete (and so immutable) in a tree of ``size`` leaves."""
    tile_level, index = key
    return size >> (TILE_HEIGHT * tile_level) >= (index + 1) * TILE_WIDTH


def bottom_row(tile: bytes, width: int) -> bytes:
    """The first ``width`` hashes of a tile's bottom row: its C2SP tlog-tiles form."""
    return tile[: width * HASH_SIZE]


class RightEdge:
    """The partial tile of each tile level, where appends happen.

    ``push`` adds a batch of leaf hashes, computing each new node once, row by
    row; ``take_dirty`` hands back every tile changed since the last call
    (full tiles once, when they complete; partial tiles each time they grow),
    for the store to write in the same transaction as the entries.
    """

    def __init__(self, size: int, load: Callable[[TileKey], bytes | None]) -> None:
        # Per tile level: (tile index, width, rows 0..7 as lists of hashes).
        self._tiles: list[tuple[int, int, list[list[bytes]]]] = []
        # Tiles changed since take_dirty: the final bytes of a tile that completed,
        # or None for the partial tile of that level (serialised when taken).
        self._dirty: dict[TileKey, bytes | None] = {}
        tile_level = 0
        while tile_level == 0 or size >> (TILE_HEIGHT * tile_level) > 0:
            count = size >> (TILE_HEIGHT * tile_level)  # hashes at this tile level's bottom
            index, width = divmod(count, TILE_WIDTH)
            rows: list[list[bytes]] = [[] for _ in range(ROWS)]
            if width:
                stored = load((tile_level, index))
                if stored is None or len(stored) != TILE_BYTES:
                    raise LookupError(f"tile {tile_level}/{index} is missing or torn")
                rows = _rows(stored, width)
            self._tiles.append((index, width, rows))
            tile_level += 1

    def copy(self) -> RightEdge:
        """An independent copy, to roll back to if a commit fails."""
        clone = RightEdge.__new__(RightEdge)
        clone._tiles = [(i, w, [list(row) for row in rows]) for i, w, rows in self._tiles]
        clone._dirty = dict(self._dirty)
        return clone

    def push(self, leaf_hashes: list[bytes]) -> None:
        tile_level, hashes = 0, leaf_hashes
        while hashes:  # the tops of tiles completed at one level go up to the next
            hashes = self._push_level(tile_level, hashes)
            tile_level += 1

    def compact(self, size: int) -> list[bytes]:
        """The perfect subtree roots that cover the ``size`` leaves pushed so far,
        largest first: for each bit ``h`` set in ``size``, the last complete node of
        tree level ``h``, always in the partial tile of its tile level (that tile
        holds at least ``2^h`` of the bottom hashes it needs, since bit ``h`` is set)."""
        hashes = []
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                tile_level, row = divmod(level, TILE_HEIGHT)
                _, width, rows = self._tiles[tile_level]
                hashes.append(rows[row][(width >> row) - 1])
        return hashes

    def take_dirty(self) -> dict[TileKey, bytes]:
        """Every tile changed since the last call, as the bytes to store."""
        changed: dict[TileKey, bytes] = {}
        for key, final in self._dirty.items():
            if final is not None:
                changed[key] = final
                continue
            index, _, rows = self._tiles[key[0]]
            assert index == key[1], "a partial tile is always its level's last"
            changed[key] = _serialise(rows)
        self._dirty = {}
        return changed

    def _push_level(self, tile_level: int, hashes: list[bytes]) -> list[bytes]:
        if tile_level == len(self._tiles):
            self._tiles.append((0, 0, [[] for _ in range(ROWS)]))
        index, width, rows = self._tiles[tile_level]
        tops: list[bytes] = []
        done = 0
        while done < len(hashes):
            take = min(TILE_WIDTH - width, len(hashes) - done)
            rows[0].extend(hashes[done : done + take])
            done += take
            old_width, width = width, width + take
            for row in range(1, ROWS):
                # Row k holds (width >> k) complete nodes; compute only the new ones.
                below = rows[row - 1]
                rows[row].extend(
                    [
                        _sha256(
                            NODE_PREFIX + below[i] + below[i + 1]
                        ).digest()  # node_hash, inlined
                        for i in range(2 * (old_width >> row), 2 * (width >> row), 2)
                    ]
                )
            if width < TILE_WIDTH:
                self._dirty.setdefault((tile_level, index), None)
                continue
            # The tile is complete: its top node is the next hash one tile level up.
            self._dirty[(tile_level, index)] = _serialise(rows)
            tops.append(node_hash(rows[ROWS - 1][0], rows[ROWS - 1][1]))
            index, width, rows = index + 1, 0, [[] for _ in range(ROWS)]
        self._tiles[tile_level] = (index, width, rows)
        return tops


def _serialise(rows: list[list[bytes]]) -> bytes:
    """Rows 0..7 at their fixed offsets; a partial tile's empty slots are zeros."""
    parts: list[bytes] = []
    for row, hashes in enumerate(rows):
        parts.extend(hashes)
        parts.append(bytes(((TILE_WIDTH >> row) - len(hashes)) * HASH_SIZE))
    return b"".join(parts)


def _rows(tile: bytes, width: int) -> list[list[bytes]]:
    return [
        [tile[slot(row, i) : slot(row, i) + HASH_SIZE] for i in range(width >> row)]
        for row in range(ROWS)
    ]


class TreeReader:
    """Roots and RFC 9162 proofs from the nodes of a tree of known size.

    ``load`` fetches a tile's bytes; each tile is fetched at most once per
    reader, so a reader serves one request (or one consistent snapshot).
    """

    def __init__(self, size: int, load: Callable[[TileKey], bytes | None]) -> None:
        self.size = size
        self._load = load
        self._tiles: dict[TileKey, bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        """The complete node at tree ``level`` covering leaves ``index·2^level …``."""
        key, offset = locate(level, index)
        tile = self._tiles.get(key)
        if tile is None:
            loaded = self._load(key)
            if loaded is None:
                raise LookupError(f"tile {key[0]}/{key[1]} is missing")
            tile = self._tiles[key] = loaded
        return tile[offset : offset + HASH_SIZE]

    def leaf_hash(self, index: int) -> bytes:
        return self.node(0, index)

    def subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])``, from as few stored nodes as possible."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:  # an aligned power of two: one stored node
            level = n.bit_length() - 1
            return self.node(level, start >> level)
        k = largest_power_of_two_below(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self) -> bytes:
        return self.subtree(0, self.size) if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """``PATH(index, D[size])`` (RFC 9162 §2.1.3.1), walking down from the root."""
        start, end, path = 0, self.size, []
        while end - start > 1:
            k = largest_power_of_two_below(end - start)
            if index < start + k:
                path.append(self.subtree(start + k, end))
                end = start + k
            else:
                path.append(self.subtree(start, start + k))
                start += k
        path.reverse()  # the RFC lists the deepest sibling first
        return path

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """``PROOF(old_size, D[size])`` (RFC 9162 §2.1.4.1), walking down from the root."""
        if old_size in (0, self.size):
            return []
        start, end, m, from_old_root, path = 0, self.size, old_size, True, []
        while m != end - start:
            k = largest_power_of_two_below(end - start)
            if m <= k:
                path.append(self.subtree(start + k, end))
                end = start + k
            else:
                path.append(self.subtree(start, start + k))
                start, m, from_old_root = start + k, m - k, False
        if not from_old_root:
            path.append(self.subtree(start, end))
        path.reverse()
        return path
