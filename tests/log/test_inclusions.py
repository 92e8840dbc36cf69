"""Inclusions (many proofs in one tree, shared walks done once) against the
reference, merkle.verify_inclusion: the same outcome for every proof, in every
order, tampered or not; and fewer hashes for a batch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmesh.errors import InvalidProof
from trustmesh.log import inclusions, merkle
from trustmesh.log.inclusions import Inclusions


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _reference(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        merkle.verify_inclusion(leaf, index, size, proof, root)
    except InvalidProof:
        return False
    return True


def _checked(tree: Inclusions, leaf: bytes, index: int, proof: list[bytes]) -> bool:
    try:
        tree.verify(leaf, index, proof)
    except InvalidProof:
        return False
    return True


@pytest.mark.parametrize("size", range(1, 34))
def test_every_proof_of_every_small_tree_holds_in_any_order(size: int) -> None:
    leaves = _leaves(size)
    root = merkle.root(leaves)
    for order in (range(size), reversed(range(size)), [*range(0, size, 2), *range(1, size, 2)]):
        tree = Inclusions(size, root)
        for i in order:
            tree.verify(leaves[i], i, merkle.inclusion_proof(leaves, i))


@st.composite
def _cases(draw: st.DrawFn) -> tuple[int, list[tuple[bytes, int, list[bytes]]], list[bytes]]:
    """A tree, then a sequence of (leaf, index, proof): valid ones, and ones
    tampered in one way each (a hash changed, dropped, added or moved; another
    leaf; another index), in a drawn order."""
    size = draw(st.integers(1, 70))
    leaves = _leaves(size)
    cases = []
    for _ in range(draw(st.integers(1, 12))):
        index = draw(st.integers(0, size - 1))
        leaf, proof = leaves[index], merkle.inclusion_proof(leaves, index)
        how = draw(st.sampled_from(["valid", "valid", "hash", "drop", "add", "swap",
                                    "leaf", "index", "short-hash"]))  # fmt: skip
        k = draw(st.integers(0, max(0, len(proof) - 1)))
        if how == "hash" and proof:
            proof[k] = merkle.node_hash(proof[k], b"x")
        elif how == "drop" and proof:
            del proof[k]
        elif how == "add":
            proof.insert(k, proof[k] if proof else leaf)
        elif how == "swap" and len(proof) > 1:
            proof[k], proof[k - 1] = proof[k - 1], proof[k]
        elif how == "leaf":
            leaf = leaves[(index + 1) % size] if size > 1 else merkle.leaf_hash(b"other")
        elif how == "index":
            index = draw(st.integers(-1, size + 1))
        elif how == "short-hash" and proof:
            proof[k] = proof[k][:31]
        cases.append((leaf, index, proof))
    return size, cases, leaves


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_the_same_outcome_as_the_reference_for_every_proof(
    case: tuple[int, list[tuple[bytes, int, list[bytes]]], list[bytes]],
) -> None:
    size, cases, leaves = case
    root = merkle.root(leaves)
    tree = Inclusions(size, root)
    for leaf, index, proof in cases:
        assert _checked(tree, leaf, index, proof) == _reference(leaf, index, size, proof, root)


def test_a_proof_that_joins_a_checked_walk_with_a_wrong_rest_is_refused() -> None:
    leaves = _leaves(40)
    root = merkle.root(leaves)
    tree = Inclusions(40, root)
    tree.verify(leaves[20], 20, merkle.inclusion_proof(leaves, 20))
    proof = merkle.inclusion_proof(leaves, 21)  # joins 20's walk after one hash
    proof[-1] = merkle.node_hash(proof[-1], proof[-1])  # ... but its top hash is wrong
    with pytest.raises(InvalidProof, match="root"):
        tree.verify(leaves[21], 21, proof)
    tree.verify(leaves[21], 21, merkle.inclusion_proof(leaves, 21))  # (the right one holds)


def test_a_batch_costs_few_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    size, first = 5_000, 4_000
    leaves = _leaves(size)
    root = merkle.root(leaves)
    proofs = [merkle.inclusion_proof(leaves, i) for i in range(first, first + 100)]
    hashed = []

    def counting(left: bytes, right: bytes) -> bytes:
        hashed.append(1)
        return merkle.node_hash(left, right)

    monkeypatch.setattr(inclusions, "node_hash", counting)
    tree = Inclusions(size, root)
    for k, proof in enumerate(proofs):
        tree.verify(leaves[first + k], first + k, proof)
    alone = sum(map(len, proofs))  # one hash per proof hash, each checked alone
    assert len(hashed) < alone / 4, (len(hashed), alone)
