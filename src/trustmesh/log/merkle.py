"""RFC 9162 §2.1 Merkle tree hashes and proofs, as plain reference functions.

These follow the RFC's definitions line by line and are the readable
reference that the persistent store (:mod:`trustmesh.log.store`) is tested
against. They take the whole list of leaf hashes, so they cost O(n): use the
store for real logs.

- leaf hash ``SHA-256(0x00 ‖ entry)``, node hash ``SHA-256(0x01 ‖ left ‖ right)``
  (§2.1.1);
- the hash of the empty tree is ``SHA-256("")``;
- inclusion proofs ``PATH(m, D[n])`` (§2.1.3.1) and their verification (§2.1.3.2);
- consistency proofs ``PROOF(m, D[n])`` (§2.1.4.1) and their verification (§2.1.4.2).

>>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
>>> verify_inclusion(leaves[3], 3, 5, inclusion_proof(leaves, 3), root(leaves))
>>> verify_consistency(2, 5, root(leaves[:2]), root(leaves), consistency_proof(leaves, 2))
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from trustmesh.errors import InvalidProof

__all__ = [
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "are_hashes",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 ‖ entry)`` (RFC 9162 §2.1.1)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)`` (RFC 9162 §2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162 §2.1.1: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH(D[n])``, the Merkle Tree Hash of the leaves (RFC 9162 §2.1.1)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(n)
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """``PATH(m, D[n])``: the audit path of leaf ``index`` (RFC 9162 §2.1.3.1)."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"index {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if index < k:
        return [*inclusion_proof(leaf_hashes[:k], index), root(leaf_hashes[k:])]
    return [*inclusion_proof(leaf_hashes[k:], index - k), root(leaf_hashes[:k])]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """``PROOF(m, D[n])`` from the tree of ``old_size`` leaves (RFC 9162 §2.1.4.1)."""
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaf_hashes, start_from_old_root=True)


def _subproof(m: int, leaves: Sequence[bytes], *, start_from_old_root: bool) -> list[bytes]:
    """``SUBPROOF(m, D[n], b)`` of RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if start_from_old_root else [root(leaves)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [
            *_subproof(m, leaves[:k], start_from_old_root=start_from_old_root),
            root(leaves[k:]),
        ]
    return [*_subproof(m - k, leaves[k:], start_from_old_root=False), root(leaves[:k])]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); :class:`InvalidProof` if it fails."""
    if not 0 <= index < size:
        raise InvalidProof(f"index {index} is outside a tree of size {size}")
    _check_hashes(proof)
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise InvalidProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("inclusion proof is too short")
    if r != root:
        raise InvalidProof("inclusion proof does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2); :class:`InvalidProof` if it fails."""
    if not 0 <= old_size <= new_size:
        raise InvalidProof(f"sizes {old_size} → {new_size} are not a growth")
    _check_hashes(proof)
    if old_size == new_size:
        if proof:
            raise InvalidProof("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise InvalidProof("equal sizes with different roots")
        return
    if old_size == 0:
        if proof:
            raise InvalidProof("a proof from the empty tree must be empty")
        return
    if not proof:
        raise InvalidProof("consistency proof is empty")
    fr, sr = _walk_consistency(old_size, new_size, prefix_proof(old_size, old_root, proof))
    if fr != old_root:
        raise InvalidProof("consistency proof does not lead to the old root")
    if sr != new_root:
        raise InvalidProof("consistency proof does not lead to the new root")


def prefix_proof(old_size: int, old_root: bytes, proof: Sequence[bytes]) -> list[bytes]:
    """A consistency proof with the old tree's hash first, where RFC 9162 leaves it
    out (an old size that is a power of two): the path §2.1.4.2 walks."""
    return [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)


def prefix_root(old_size: int, new_size: int, new_root: bytes, path: Sequence[bytes]) -> bytes:
    """The root of the first ``old_size`` leaves of the tree (``new_size``, ``new_root``),
    from a consistency path (:func:`prefix_proof`) that rebuilds ``new_root``.

    Once the path rebuilds the new root its hashes are that tree's, so the old root
    it gives is the tree's own prefix: another root signed for ``old_size`` is a
    tree the new one does not extend (:class:`InvalidProof` if the path is not one)."""
    if not 0 < old_size < new_size:
        raise InvalidProof(f"sizes {old_size} → {new_size} are not a growth from a non-empty tree")
    _check_hashes(path)
    if not path:
        raise InvalidProof("consistency proof is empty")
    fr, sr = _walk_consistency(old_size, new_size, path)
    if sr != new_root:
        raise InvalidProof("consistency proof does not lead to the new root")
    return fr


def _walk_consistency(old_size: int, new_size: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """(old root, new root) that ``path`` leads to (RFC 9162 §2.1.4.2, from step 3)."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("consistency proof is too short")
    return fr, sr


def are_hashes(items: Sequence[object]) -> bool:
    """Whether every item is a hash: bytes, 32 of them. (A proof's few dozen are
    checked a type and a length at a time: receipts are checked by the hundred.)"""
    return {*map(type, items)} <= _BYTES and {*map(len, items)} <= _HASH_SIZES  # type: ignore[arg-type]


_BYTES, _HASH_SIZES = {bytes}, {HASH_SIZE}


def _check_hashes(proof: Sequence[bytes]) -> None:
    if not are_hashes(proof):
        raise InvalidProof("a proof is a list of 32-byte hashes")
