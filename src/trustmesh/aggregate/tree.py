"""The Merkle-sum tree an aggregate claim commits (pure).

Leaves are the matching readings sorted by (device id, seq), each
``(origin, index, leaf hash, device id, seq, ts, value, f(value))``: where the
reading is logged (its log's origin id and its index there, and the RFC 9162
leaf hash of the entry), whose it is, when, its value and the model's output.
Every node carries the totals of f under it: count, sum, min and max, and every
node is the hash of one shape, its *opening*:

    node = keccak256(abi.encode(a, b, count, sum, min, max))
    leaf node:  a = keccak256(abi.encode(origin, index, leaf_hash, device, seq, ts,
                                         value, fx)),  b = 0,  totals (1, fx, fx, fx)
    inner node: a, b = its children's hashes, totals the join of theirs

so a contract checks any node's totals from its opening alone. Levels pair nodes
2i and 2i+1 from the left; a level's odd last node is carried up as it is. The
tree is ordered (not sorted pairs): a leaf's place is part of what is proven (its
rank is the count of the left siblings on its path), so that a missing reading
is shown by the two adjacent leaves around the place it should have.

A tree is built from its leaves, and optionally *patches*: totals that replace
the computed ones of some nodes. An honest claimer has none; they let a claim
that does not add up be represented exactly, so that it can be proven wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import sha3

from trustmesh.errors import InvalidAggregate, InvalidProof
from trustmesh.reputation.merkle import keccak256

__all__ = ["Leaf", "Node", "Opening", "Step", "SumTree", "check_path", "root_from_path", "word"]

ZERO = bytes(32)
_LEAF_B = ZERO + (1).to_bytes(32, "big")  # a leaf node's b and count


def word(value: int) -> bytes:
    """One ABI word of a uint256 or int256 (two's complement): ``abi.encode`` of a
    static tuple is these words side by side, built here ten times faster than
    eth_abi's general encoder (tests hold the two equal)."""
    return value.to_bytes(32, "big", signed=value < 0)


@dataclass(frozen=True)
class Leaf:
    origin: bytes  # the log's origin id (32 bytes, as the Registry names logs)
    index: int  # the entry's index in that log
    leaf_hash: bytes  # the RFC 9162 leaf hash of the entry
    device: bytes  # the device's id (32 bytes)
    seq: int
    ts: int
    value: int
    fx: int  # the model's output

    @property
    def key(self) -> tuple[bytes, int]:
        """Where the leaf sorts: by device, then seq."""
        return self.device, self.seq

    def encode(self) -> bytes:
        return b"".join((self.origin, word(self.index), self.leaf_hash, self.device,
                         word(self.seq), word(self.ts), word(self.value),
                         word(self.fx)))  # fmt: skip

    @property
    def digest(self) -> bytes:
        return keccak256(self.encode())

    def opening(self) -> Opening:
        return Opening(self.digest, ZERO, 1, self.fx, self.fx, self.fx)

    def node(self) -> Node:
        return self.opening().node()


@dataclass(slots=True)
class Node:
    """A node as its parent sees it: its hash and the totals under it. (Not frozen:
    a million are made per million readings, and a frozen dataclass's __init__
    costs twice as much; nothing changes one once made.)"""

    hash: bytes
    count: int
    sum: int
    min: int
    max: int

    def join(self, right: Node) -> Node:
        """The parent of this node and ``right``."""
        return joined(self, right).node()


@dataclass(frozen=True)
class Opening:
    """What a node is the hash of: ``a``, ``b`` and its totals."""

    a: bytes
    b: bytes
    count: int
    sum: int
    min: int
    max: int

    def node(self) -> Node:
        digest = keccak256(self.a + self.b + word(self.count) + word(self.sum)
                           + word(self.min) + word(self.max))  # fmt: skip
        return Node(digest, self.count, self.sum, self.min, self.max)

    def adds_up(self, left: Node, right: Node) -> bool:
        """Whether these totals are the join of the children's."""
        return (self.count, self.sum, self.min, self.max) == _totals(left, right)


def _totals(left: Node, right: Node) -> tuple[int, int, int, int]:
    return (left.count + right.count, left.sum + right.sum, min(left.min, right.min),
            max(left.max, right.max))  # fmt: skip


def joined(left: Node, right: Node) -> Opening:
    return Opening(left.hash, right.hash, *_totals(left, right))


Totals = tuple[int, int, int, int]


@dataclass(frozen=True)
class Step:
    """One step of a path up the tree: the sibling, and whether it is on the left."""

    sibling: Node
    left: bool


def _leaf_nodes(leaves: Sequence[Leaf]) -> list[Node]:
    # Leaf.node(), unrolled with the hash bound locally: this loop is most of a build.
    # index, seq and ts are unsigned (a Leaf of readings has them so).
    hasher, nodes = sha3.keccak_256, []
    for leaf in leaves:
        fx = leaf.fx
        fw = fx.to_bytes(32, "big", signed=fx < 0)
        value = leaf.value
        digest = hasher(b"".join((
            leaf.origin, leaf.index.to_bytes(32, "big"), leaf.leaf_hash, leaf.device,
            leaf.seq.to_bytes(32, "big"), leaf.ts.to_bytes(32, "big"),
            value.to_bytes(32, "big", signed=value < 0), fw,
        ))).digest()  # fmt: skip
        nodes.append(Node(hasher(b"".join((digest, _LEAF_B, fw, fw, fw))).digest(), 1, fx, fx, fx))
    return nodes


def _join_level(level: list[Node]) -> list[Node]:
    hasher, above = sha3.keccak_256, []
    for k in range(0, len(level) - 1, 2):  # Node.join, unrolled
        left, right = level[k], level[k + 1]
        count, total = left.count + right.count, left.sum + right.sum
        low = left.min if left.min < right.min else right.min
        high = left.max if left.max > right.max else right.max
        digest = hasher(b"".join((
            left.hash, right.hash, count.to_bytes(32, "big"),
            total.to_bytes(32, "big", signed=total < 0), low.to_bytes(32, "big", signed=low < 0),
            high.to_bytes(32, "big", signed=high < 0),
        ))).digest()  # fmt: skip
        above.append(Node(digest, count, total, low, high))
    return above


class SumTree:
    """The tree over ``leaves``; ``patches`` maps (level, position) to the totals a
    node is committed with instead of its children's join (a claim that lies)."""

    def __init__(
        self,
        leaves: Sequence[Leaf],
        patches: Mapping[tuple[int, int], Totals] | None = None,
        *,
        ordered: bool = True,
    ) -> None:
        if not leaves:
            raise InvalidAggregate("an aggregate needs at least one reading")
        if ordered and any(a.key >= b.key for a, b in pairwise(leaves)):
            raise InvalidAggregate("the leaves are not sorted by (device, seq) without repeats")
        self.leaves = tuple(leaves)
        self.patches = dict(patches or {})
        level = _leaf_nodes(self.leaves)
        levels = [level]
        while len(level) > 1:
            above = _join_level(level)
            if len(level) % 2:
                above.append(level[-1])
            levels.append(above)
            level = above
        self.levels = levels
        if self.patches:
            self._patch()

    def _patch(self) -> None:
        """Rebuild from the lowest patched level up, with the patches in."""
        lowest = min(level for level, _ in self.patches)
        for level in range(lowest, len(self.levels)):
            made = [self._opened(level, k, self.opening_unpatched(level, k)).node()
                    for k in range(len(self.levels[level]))
                    if level == 0 or 2 * k + 1 < len(self.levels[level - 1])]  # fmt: skip
            if level > 0 and len(self.levels[level - 1]) % 2:
                made.append(self.levels[level - 1][-1])
            self.levels[level] = made

    def opening_unpatched(self, level: int, position: int) -> Opening:
        if level == 0:
            return self.leaves[position].opening()
        below = self.levels[level - 1]
        return joined(below[2 * position], below[2 * position + 1])

    def _opened(self, level: int, position: int, opening: Opening) -> Opening:
        patch = self.patches.get((level, position)) if self.patches else None
        if patch is None:
            return opening
        return Opening(opening.a, opening.b, *patch)

    @property
    def root(self) -> Node:
        return self.levels[-1][0]

    def node(self, level: int, position: int) -> Node:
        return self.levels[level][position]

    def opening(self, level: int, position: int) -> Opening:
        """What node ``position`` of ``level`` is the hash of (a carried node's
        opening is where it was made, lower down)."""
        while level > 0 and 2 * position + 1 >= len(self.levels[level - 1]):
            level, position = level - 1, 2 * position  # carried up from below
        if level == 0:
            return self._opened(0, position, self.leaves[position].opening())
        below = self.levels[level - 1]
        return self._opened(level, position, joined(below[2 * position], below[2 * position + 1]))

    def children(self, level: int, position: int) -> tuple[int, int]:
        """The level of the node's children (its own, made level's, minus one)."""
        while level > 0 and 2 * position + 1 >= len(self.levels[level - 1]):
            level, position = level - 1, 2 * position
        return level - 1, 2 * position

    def path(self, position: int, level: int = 0) -> list[Step]:
        """The siblings from node ``position`` of ``level`` up to the root."""
        if not 0 <= position < len(self.levels[level]):
            raise IndexError(f"no node {position} on level {level}")
        steps = []
        for below in self.levels[level:-1]:
            sibling = position ^ 1
            if sibling < len(below):
                steps.append(Step(below[sibling], left=sibling < position))
            position //= 2
        return steps


def root_from_path(node: Node, path: Sequence[Step]) -> Node:
    """The root ``path`` leads to from ``node`` (what a contract recomputes)."""
    for step in path:
        node = step.sibling.join(node) if step.left else node.join(step.sibling)
    return node


def rank(path: Sequence[Step]) -> int:
    """How many leaves are left of the node the path starts from."""
    return sum(step.sibling.count for step in path if step.left)


def check_path(node: Node, path: Sequence[Step], root: Node) -> None:
    """InvalidProof unless ``path`` leads from ``node`` to ``root``."""
    if root_from_path(node, path).hash != root.hash:
        raise InvalidProof("the path does not lead to the claimed root")
