"""A compact range over a log's leaves: the roots of the perfect subtrees that
cover ``[0, size)``, enough to compute the RFC 9162 root after every append in
O(log n) memory and time (a follower checks each new batch of entries against
a signed root without keeping a tree).

>>> from trustmesh.log import merkle
>>> leaves = [merkle.leaf_hash(bytes([i])) for i in range(7)]
>>> compact = CompactRange()
>>> compact.extend(leaves)
>>> compact.root() == merkle.root(leaves)
True
"""

from __future__ import annotations

from collections.abc import Iterable

from trustmesh.log.merkle import EMPTY_ROOT, node_hash

__all__ = ["CompactRange"]


class CompactRange:
    def __init__(self) -> None:
        self.size = 0
        self._hashes: list[bytes] = []  # perfect subtree roots, largest first

    def copy(self) -> CompactRange:
        other = CompactRange()
        other.size, other._hashes = self.size, list(self._hashes)
        return other

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for leaf in leaf_hashes:
            self._hashes.append(leaf)
            self.size += 1
            merged = self.size
            while merged & 1 == 0:  # two equal subtrees make one twice the size
                right = self._hashes.pop()
                self._hashes.append(node_hash(self._hashes.pop(), right))
                merged >>= 1

    def root(self) -> bytes:
        """MTH of the leaves so far (RFC 9162 §2.1.1)."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root
