"""Many inclusion proofs in one tree, each checked as :func:`~trustmesh.log.merkle.verify_inclusion`
checks it, for the price of the few hashes that are new.

A batch's receipts prove consecutive entries of one tree: their paths to the
root share all but their lowest nodes. The walk up a proof is determined by the
node it is at (its level and position: ``index >> level``), the hash it holds
there, and the proof hashes left. So when a proof reaches a node of a path
checked before, with the same hash and the same hashes left, the rest of its
walk would repeat that one, hash for hash, and end as it ended: at the root. It
stops there. Nothing else is skipped: the outcome is the reference's for every
proof (tested against it), only fewer hashes are computed.

>>> from trustmesh.log import merkle
>>> leaves = [merkle.leaf_hash(bytes([i])) for i in range(6)]
>>> tree = Inclusions(6, merkle.root(leaves))
>>> for i in (2, 3): tree.verify(leaves[i], i, merkle.inclusion_proof(leaves, i))
"""

from __future__ import annotations

from collections.abc import Sequence

from trustmesh.errors import InvalidProof
from trustmesh.log.merkle import are_hashes, node_hash

__all__ = ["Inclusions"]

Node = tuple[int, int]  # (level above the leaves, position at that level)


class Inclusions:
    """Inclusion proofs in the tree of ``size`` and ``root``."""

    def __init__(self, size: int, root: bytes) -> None:
        self.size, self.root = size, root
        # A node on the walk of a proof that held → (the hash there, that proof's
        # hashes, how many of them were used by then).
        self._walked: dict[Node, tuple[bytes, tuple[bytes, ...], int]] = {}

    def verify(self, leaf_hash: bytes, index: int, proof: Sequence[bytes]) -> None:
        """:class:`InvalidProof` unless ``proof`` puts ``leaf_hash`` at ``index``."""
        if not 0 <= index < self.size:
            raise InvalidProof(f"index {index} is outside a tree of size {self.size}")
        hashes = tuple(proof)
        if not are_hashes(hashes):
            raise InvalidProof("a proof is a list of 32-byte hashes")
        walked = self._walked
        trail: list[tuple[Node, bytes, int]] = []
        fn, sn, level, r = index, self.size - 1, 0, leaf_hash
        for k, p in enumerate(hashes):
            seen = walked.get((level, fn))
            if seen is not None and seen[0] == r and seen[1][seen[2] :] == hashes[k:]:
                break  # the walk of a proof that held, from here on
            if sn == 0:
                raise InvalidProof("inclusion proof is too long")
            trail.append(((level, fn), r, k))
            if fn & 1 or fn == sn:
                r = node_hash(p, r)
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
                    level += 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
            level += 1
        else:
            if sn != 0:
                raise InvalidProof("inclusion proof is too short")
            if r != self.root:
                raise InvalidProof("inclusion proof does not lead to the root")
        for node, value, k in trail:
            walked[node] = (value, hashes, k)
