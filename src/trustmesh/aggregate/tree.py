"""The Merkle-sum tree an aggregate claim commits (pure).

Leaves are the matching readings sorted by (device id, seq), each
``(origin, index, leaf hash, device id, seq, ts, value, f(value))``: where the
reading is logged (its log's origin id and its index there, and the RFC 9162
leaf hash of the entry), whose it is, when, its value and the model's output.
Every node carries the totals of f under it: count, sum, min and max.

    leaf node  = keccak256(abi.encode(origin, index, leaf_hash, device, seq, ts,
                                      value, fx))  with (1, fx, fx, fx)
    inner node = keccak256(abi.encode(left, right, count, sum, min, max))

Levels pair nodes 2i and 2i+1 from the left; a level's odd last node is carried
up as it is. The tree is ordered (not sorted pairs): a leaf's place is part of
what is proven, so that a missing reading is shown by the two leaves around the
place it should have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from eth_abi.abi import encode

from trustmesh.errors import InvalidAggregate, InvalidProof
from trustmesh.reputation.merkle import keccak256

__all__ = ["Leaf", "Node", "Step", "SumTree", "check_path", "root_from_path"]

_LEAF_TYPES = ["bytes32", "uint256", "bytes32", "bytes32", "uint256", "uint256", "int256",
               "int256"]  # fmt: skip
_NODE_TYPES = ["bytes32", "bytes32", "uint256", "int256", "int256", "int256"]


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

    def node(self) -> Node:
        digest = keccak256(encode(_LEAF_TYPES, [self.origin, self.index, self.leaf_hash,
                                                self.device, self.seq, self.ts, self.value,
                                                self.fx]))  # fmt: skip
        return Node(digest, 1, self.fx, self.fx, self.fx)


@dataclass(frozen=True)
class Node:
    hash: bytes
    count: int
    sum: int
    min: int
    max: int

    def join(self, right: Node) -> Node:
        """The parent of this node and ``right``."""
        count, total = self.count + right.count, self.sum + right.sum
        low, high = min(self.min, right.min), max(self.max, right.max)
        digest = keccak256(encode(_NODE_TYPES, [self.hash, right.hash, count, total, low, high]))
        return Node(digest, count, total, low, high)


@dataclass(frozen=True)
class Step:
    """One step of a path up the tree: the sibling, and whether it is on the left."""

    sibling: Node
    left: bool


class SumTree:
    """The tree over ``leaves`` (sorted by device and seq, no two alike)."""

    def __init__(self, leaves: Sequence[Leaf]) -> None:
        if not leaves:
            raise InvalidAggregate("an aggregate needs at least one reading")
        keys = [leaf.key for leaf in leaves]
        if any(a >= b for a, b in pairwise(keys)):
            raise InvalidAggregate("the leaves are not sorted by (device, seq) without repeats")
        self.leaves = tuple(leaves)
        levels = [[leaf.node() for leaf in leaves]]
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [below[i].join(below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        self.levels = levels

    @property
    def root(self) -> Node:
        return self.levels[-1][0]

    def node(self, level: int, position: int) -> Node:
        return self.levels[level][position]

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


def check_path(node: Node, path: Sequence[Step], root: Node) -> None:
    """InvalidProof unless ``path`` leads from ``node`` to ``root``."""
    if root_from_path(node, path) != root:
        raise InvalidProof("the path does not lead to the claimed root")
