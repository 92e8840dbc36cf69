"""The commitment tree: keccak as Ethereum has it, sorted pairs, every proof."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from hypothesis import given
from hypothesis import strategies as st

from trustmesh.errors import InvalidProof
from trustmesh.reputation.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    check_proof,
    keccak256,
    leaf_hash,
    pair_hash,
    root_from_proof,
)


def test_keccak_is_ethereums_not_sha3() -> None:
    # Known answers: keccak256("") and keccak256("abc") (Ethereum's pre-standard Keccak).
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_leaf_is_the_standard_double_hash() -> None:
    encoded = encode(["bytes32", "uint256"], [bytes(32), 7])
    assert leaf_hash(encoded) == keccak256(keccak256(encoded))


def test_pairs_are_sorted() -> None:
    a, b = keccak256(b"a"), keccak256(b"b")
    assert pair_hash(a, b) == pair_hash(b, a) == keccak256(min(a, b) + max(a, b))


def test_small_trees_by_hand() -> None:
    leaves = [keccak256(bytes([i])) for i in range(3)]
    assert MerkleTree([]).root == EMPTY_ROOT
    assert MerkleTree(leaves[:1]).root == leaves[0]
    assert MerkleTree(leaves[:2]).root == pair_hash(leaves[0], leaves[1])
    # the odd leaf is carried up: root = H(H(l0, l1), l2)
    assert MerkleTree(leaves).root == pair_hash(pair_hash(leaves[0], leaves[1]), leaves[2])
    assert MerkleTree(leaves).proof(2) == [pair_hash(leaves[0], leaves[1])]


@given(st.integers(min_value=1, max_value=70))
def test_every_leaf_proves_and_no_other(size: int) -> None:
    leaves = [keccak256(i.to_bytes(4, "big")) for i in range(size)]
    tree = MerkleTree(leaves)
    for index, leaf in enumerate(leaves):
        proof = tree.proof(index)
        check_proof(proof, tree.root, leaf)
        assert len(proof) <= max(1, (size - 1).bit_length())
        with pytest.raises(InvalidProof):
            check_proof(proof, tree.root, keccak256(b"not a leaf"))
        if proof:
            tampered = [*proof[:-1], keccak256(proof[-1])]
            assert root_from_proof(leaf, tampered) != tree.root


def test_proof_bounds_and_shapes() -> None:
    tree = MerkleTree([keccak256(b"x"), keccak256(b"y")])
    with pytest.raises(IndexError):
        tree.proof(2)
    with pytest.raises(InvalidProof, match="32-byte"):
        check_proof([b"short"], tree.root, keccak256(b"x"))
    with pytest.raises(InvalidProof):
        check_proof([], EMPTY_ROOT, keccak256(b"x"))
