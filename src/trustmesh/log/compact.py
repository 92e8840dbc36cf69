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

from trustmesh.log.merkle import EMPTY_ROOT, HASH_SIZE, largest_power_of_two_below, node_hash

__all__ = ["CompactRange"]

# A node of a batch's walk that holds batch leaves: its children's hashes, their
# nodes in turn (None for a leaf, or a child that holds none), and whether its left
# child holds batch leaves (its right one always does: the batch ends the tree).
_Node = tuple[bytes, bytes, "_Node | None", "_Node | None", bool]


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
        root, written = self.append_with_written_proofs(leaf_hashes, bytes.hex)
        width = 2 * HASH_SIZE
        return root, [
            [bytes.fromhex(path[i : i + width]) for i in range(0, len(path), width)]
            for path in written
        ]

    def append_with_written_proofs(
        self, leaf_hashes: Sequence[bytes], write: Callable[[bytes], str]
    ) -> tuple[bytes, list[str]]:
        """:meth:`append_with_proofs`, each proof as the concatenation of its hashes
        as ``write`` writes them, from the leaf up (a tlog-proof's lines).

        Two passes: the first hashes each node once, bottom up; the second writes
        the proofs top down, each node's sibling written once and put in front of
        its parent's suffix, which every leaf below shares (a batch's proofs differ
        only below the subtrees they share)."""
        if not leaf_hashes:
            return self.root(), []
        first, size = self.size, self.size + len(leaf_hashes)
        known: dict[int, bytes] = {}  # start → hash of each perfect subtree left of the batch
        start = 0
        for digest in self._hashes:
            known[start] = digest
            start += 1 << (first - start).bit_length() - 1
        edge: list[bytes] = []  # the new range: perfect subtrees along the right edge

        def walk(lo: int, hi: int, on_edge: bool) -> tuple[bytes, _Node | None]:
            """MTH(D[lo:hi]), and its node (None where it holds no batch leaves,
            or is one)."""
            perfect_edge = on_edge and (hi - lo) & (hi - lo - 1) == 0
            node: _Node | None = None
            if hi <= first:
                digest = known[lo]
            elif hi - lo == 1:
                digest = leaf_hashes[lo - first]
            else:
                k = largest_power_of_two_below(hi - lo)
                left, left_node = walk(lo, lo + k, False)
                if on_edge and not perfect_edge:
                    edge.append(left)  # the left child of an edge node is perfect
                right, right_node = walk(lo + k, hi, on_edge and not perfect_edge)
                node = (left, right, left_node, right_node, lo + k > first)
                digest = node_hash(left, right)
            if perfect_edge:
                edge.append(digest)
            return digest, node

        root, tree = walk(0, size, True)
        proofs: list[str] = []

        def emit(node: _Node, suffix: str) -> None:
            left, right, left_node, right_node, left_holds = node
            if left_node is not None:
                emit(left_node, write(right) + suffix)
            elif left_holds:  # a batch leaf
                proofs.append(write(right) + suffix)
            if right_node is not None:
                emit(right_node, write(left) + suffix)
            else:
                proofs.append(write(left) + suffix)

        if tree is None:  # the batch is the tree's only leaf
            proofs.append("")
        else:
            emit(tree, "")
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
