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

:meth:`CompactRange.append_with_proofs` appends a batch and makes, in the same
pass, the RFC 9162 inclusion proof of every leaf of the batch in the new tree:
each node is hashed once, however many proofs it is in (a log answers a batch
of readings with one signed checkpoint and a proof each).

>>> compact = CompactRange()
>>> compact.extend(leaves[:5])
>>> root, proofs = compact.append_with_proofs(leaves[5:])
>>> root == merkle.root(leaves) and proofs[1] == merkle.inclusion_proof(leaves, 6)
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from trustmesh.log.merkle import EMPTY_ROOT, largest_power_of_two_below, node_hash

__all__ = ["CompactRange"]

T = TypeVar("T")


def _as_is(digest: bytes) -> bytes:
    return digest


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

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """The range of a tree of ``size`` leaves from its perfect subtree roots,
        largest first (one per bit set in ``size``)."""
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} perfect subtrees")
        compact = cls()
        compact.size, compact._hashes = size, list(hashes)
        return compact

    @property
    def hashes(self) -> list[bytes]:
        """The perfect subtree roots that cover the leaves so far, largest first."""
        return list(self._hashes)

    def append_with_proofs(self, leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
        """Append ``leaf_hashes``; the new root, and the inclusion proof (RFC 9162
        §2.1.3.1) of each appended leaf in the new tree, in order.

        A sibling wholly left of the batch is always one of this range's subtrees
        (a subtree holding a batch leaf contains every subtree to its left that it
        overlaps), so the proofs need nothing of the log but this range; and the
        new range is read off the tree's right edge on the way."""
        return self.append_with_written_proofs(leaf_hashes, _as_is)

    def append_with_written_proofs(
        self, leaf_hashes: Sequence[bytes], write: Callable[[bytes], T]
    ) -> tuple[bytes, list[list[T]]]:
        """:meth:`append_with_proofs`, each hash of the proofs as ``write`` writes it:
        a node is in many proofs, and is written once."""
        if not leaf_hashes:
            return self.root(), []
        first, size = self.size, self.size + len(leaf_hashes)
        known: dict[int, bytes] = {}  # start → hash of each perfect subtree left of the batch
        start = 0
        for digest in self._hashes:
            known[start] = digest
            start += 1 << (first - start).bit_length() - 1
        proofs: list[list[T]] = []
        edge: list[bytes] = []  # the new range: perfect subtrees along the right edge

        def walk(lo: int, hi: int, on_edge: bool) -> bytes:
            """MTH(D[lo:hi]); appends the proofs of the batch leaves in it to their ends."""
            perfect_edge = on_edge and (hi - lo) & (hi - lo - 1) == 0
            if hi <= first:
                digest = known[lo]
            elif hi - lo == 1:
                proofs.append([])
                digest = leaf_hashes[lo - first]
            else:
                k = largest_power_of_two_below(hi - lo)
                left_start = len(proofs)
                left = walk(lo, lo + k, False)
                if on_edge and not perfect_edge:
                    edge.append(left)  # the left child of an edge node is perfect
                right_start = len(proofs)
                right = walk(lo + k, hi, on_edge and not perfect_edge)
                if right_start > left_start:
                    written = write(right)
                    for path in proofs[left_start:right_start]:
                        path.append(written)
                if len(proofs) > right_start:
                    written = write(left)
                    for path in proofs[right_start:]:
                        path.append(written)
                digest = node_hash(left, right)
            if perfect_edge:
                edge.append(digest)
            return digest

        root = walk(0, size, True)
        self.size, self._hashes = size, edge
        return root, proofs

    def root(self) -> bytes:
        """MTH of the leaves so far (RFC 9162 §2.1.1)."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root
