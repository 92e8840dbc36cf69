"""Merkle commitments that a contract checks with snekmate's
``merkle_proof_verification`` (and OpenZeppelin's ``MerkleProof``).

The rules are theirs: a parent is ``keccak256(min(a, b) ‖ max(a, b))`` (sorted
pairs, so a proof is a plain list of siblings), and a leaf is the double hash
``keccak256(keccak256(abi_encoded_values))``, as OpenZeppelin's
StandardMerkleTree makes it, so that no 64-byte leaf preimage can pass for two
inner nodes. Leaves are kept in the order given (the caller sorts them: subjects
by id); a node without a sibling on its level moves up unchanged, so its proof
is one hash shorter.

>>> leaves = [leaf_hash(bytes([i]) * 32) for i in range(5)]
>>> tree = MerkleTree(leaves)
>>> check_proof(tree.proof(3), tree.root, leaves[3])  # raises InvalidProof if wrong
>>> root_from_proof(leaves[3], tree.proof(3)) == tree.root
True
"""

from __future__ import annotations

from collections.abc import Sequence

import sha3

from trustmesh.errors import InvalidProof

__all__ = ["MerkleTree", "check_proof", "keccak256", "leaf_hash", "pair_hash", "root_from_proof"]

HASH = 32
EMPTY_ROOT = bytes(HASH)
"""The root of a tree with no leaves (no proof verifies against it)."""


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the pre-standard padding, not SHA3-256): safe-pysha3's C
    implementation, a seventh of pycryptodome's cost a call (0.7 against 4.8 µs)."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def leaf_hash(encoded: bytes) -> bytes:
    """A leaf of ABI-encoded values: ``keccak256(keccak256(encoded))``."""
    return keccak256(keccak256(encoded))


def pair_hash(a: bytes, b: bytes) -> bytes:
    """A parent: the hash of its two children, the smaller first."""
    return keccak256(a + b if a < b else b + a)


class MerkleTree:
    """All levels of a sorted-pair tree over ``leaves`` (leaf hashes, in order), each
    level kept as one string of 32-byte hashes (two million leaves' hashes as two
    million objects would cost twice the memory)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._levels = _levels(b"".join(leaves), [])

    @classmethod
    def from_levels(cls, leaves: bytes, made: Sequence[bytes]) -> MerkleTree:
        """The tree over the concatenated hashes ``leaves``, where ``made[k]`` is a
        prefix of level ``k + 1`` already computed (by processes each given part of
        the leaves): only the rest is hashed here."""
        tree = cls([])
        tree._levels = _levels(leaves, made)
        return tree

    @property
    def root(self) -> bytes:
        top = self._levels[-1]
        return top if top else EMPTY_ROOT

    def __len__(self) -> int:
        return len(self._levels[0]) // HASH

    def proof(self, index: int) -> list[bytes]:
        """The siblings from leaf ``index`` up to the root."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf {index} of a tree of {len(self)}")
        siblings = []
        for level in self._levels[:-1]:
            sibling = (index ^ 1) * HASH
            if sibling < len(level):
                siblings.append(level[sibling : sibling + HASH])
            index //= 2
        return siblings


def _levels(leaves: bytes, made: Sequence[bytes]) -> list[bytes]:
    levels = [leaves]
    while len(levels[-1]) > HASH:
        below = levels[-1]
        count = len(below) // HASH
        known = made[len(levels) - 1] if len(levels) - 1 < len(made) else b""
        rest = [
            pair_hash(below[i : i + HASH], below[i + HASH : i + 2 * HASH])
            for i in range(2 * len(known), (count - 1) * HASH, 2 * HASH)
        ]
        carried = below[-HASH:] if count % 2 else b""  # no sibling: carried up as it is
        levels.append(known + b"".join(rest) + carried)
    return levels


def root_from_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (snekmate's ``_process_proof``)."""
    computed = leaf
    for sibling in proof:
        computed = pair_hash(computed, sibling)
    return computed


def check_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> None:
    """Raise :class:`~trustmesh.errors.InvalidProof` unless ``proof`` leads from
    ``leaf`` to ``root``: what the contract checks."""
    if any(len(sibling) != 32 for sibling in proof):
        raise InvalidProof("a proof is a list of 32-byte hashes")
    if root_from_proof(leaf, proof) != root:
        raise InvalidProof("the proof does not lead from the leaf to the root")
