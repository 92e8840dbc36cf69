"""The benchmark's logs of identical entries are real RFC 9162 logs."""

from __future__ import annotations

import pytest

from trustmesh.bench.chain import UniformTree
from trustmesh.log import merkle


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 100, 257])
def test_uniform_tree_matches_the_reference(size: int) -> None:
    leaves = [merkle.leaf_hash(b"trustmesh benchmark entry")] * size
    tree = UniformTree(size)
    assert tree.root() == merkle.root(leaves)
    for old in range(size + 1):
        assert tree.consistency_proof(old) == merkle.consistency_proof(leaves, old)
    for index in range(0, size, max(1, size // 7)):
        assert tree.inclusion_proof(index) == merkle.inclusion_proof(leaves, index)


def test_large_uniform_proofs_verify() -> None:
    old, new = 2**32 - 10_000, 2**32
    proof = UniformTree(new).consistency_proof(old)
    merkle.verify_consistency(old, new, UniformTree(old).root(), UniformTree(new).root(), proof)
