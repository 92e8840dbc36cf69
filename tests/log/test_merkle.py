"""RFC 9162 reference functions: known answers, every small tree exhaustively,
tampering anywhere, and random trees; plus the tiled reader against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmesh.errors import InvalidProof
from trustmesh.log import merkle
from trustmesh.log.tiles import RightEdge, TileKey, TreeReader

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "rfc6962.json").read_text()
)
CT_LEAVES = [merkle.leaf_hash(bytes.fromhex(h)) for h in VECTORS["leaves_hex"]]


def _leaves(n: int, salt: int = 0) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big") + bytes([salt])) for i in range(n)]


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[(bit // 8) % len(flipped)] ^= 1 << (bit % 8)
    return bytes(flipped)


class Tiled:
    """A tree held the way the store holds it, in memory."""

    def __init__(self, leaves: list[bytes], batch: int = 7) -> None:
        self.tiles: dict[TileKey, bytes] = {}
        edge = RightEdge(0, self.tiles.get)
        for start in range(0, len(leaves), batch):
            edge.push(leaves[start : start + batch])
            self.tiles.update(edge.take_dirty())
        self.size = len(leaves)

    def reader(self, size: int | None = None) -> TreeReader:
        return TreeReader(self.size if size is None else size, self.tiles.get)


# --- known answers -------------------------------------------------------------


@pytest.mark.parametrize("size", range(9))
def test_ct_reference_roots(size: int) -> None:
    expected = bytes.fromhex(VECTORS["roots_by_size"][str(size)])
    assert merkle.root(CT_LEAVES[:size]) == expected
    assert Tiled(CT_LEAVES[:size]).reader().root() == expected


@pytest.mark.parametrize(
    "vector", VECTORS["inclusion"], ids=lambda v: f"{v['leaf_1based']}-of-{v['size']}"
)
def test_ct_reference_inclusion_proofs(vector: dict[str, Any]) -> None:
    index, size = vector["leaf_1based"] - 1, vector["size"]
    expected = [bytes.fromhex(h) for h in vector["proof"]]
    assert merkle.inclusion_proof(CT_LEAVES[:size], index) == expected
    assert Tiled(CT_LEAVES[:size]).reader().inclusion_proof(index) == expected
    root = bytes.fromhex(VECTORS["roots_by_size"][str(size)])
    merkle.verify_inclusion(CT_LEAVES[index], index, size, expected, root)


@pytest.mark.parametrize(
    "vector", VECTORS["consistency"], ids=lambda v: f"{v['first']}-to-{v['second']}"
)
def test_ct_reference_consistency_proofs(vector: dict[str, Any]) -> None:
    first, second = vector["first"], vector["second"]
    expected = [bytes.fromhex(h) for h in vector["proof"]]
    assert merkle.consistency_proof(CT_LEAVES[:second], first) == expected
    assert Tiled(CT_LEAVES[:second]).reader().consistency_proof(first) == expected
    roots = VECTORS["roots_by_size"]
    merkle.verify_consistency(
        first, second, bytes.fromhex(roots[str(first)]), bytes.fromhex(roots[str(second)]), expected
    )


# --- every tree of size 1..64, every index, every old size ----------------------


@pytest.mark.parametrize("size", range(1, 65))
def test_every_inclusion_proof_of_every_small_tree(size: int) -> None:
    leaves = _leaves(size)
    root = merkle.root(leaves)
    reader = Tiled(leaves).reader()
    for index in range(size):
        proof = merkle.inclusion_proof(leaves, index)
        assert reader.inclusion_proof(index) == proof
        merkle.verify_inclusion(leaves[index], index, size, proof, root)
        # A flipped bit anywhere (leaf, root, any proof hash) must fail.
        for bit in (0, 77, 255):
            with pytest.raises(InvalidProof):
                merkle.verify_inclusion(_flip(leaves[index], bit), index, size, proof, root)
            with pytest.raises(InvalidProof):
                merkle.verify_inclusion(leaves[index], index, size, proof, _flip(root, bit))
            for position in range(len(proof)):
                bad = [*proof]
                bad[position] = _flip(bad[position], bit + position)
                with pytest.raises(InvalidProof):
                    merkle.verify_inclusion(leaves[index], index, size, bad, root)
        # So must a wrong index, a proof too short or too long.
        if size > 1:
            with pytest.raises(InvalidProof):
                merkle.verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)
            with pytest.raises(InvalidProof):
                merkle.verify_inclusion(leaves[index], index, size, proof[:-1], root)
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(leaves[index], index, size, [*proof, root], root)
        # (A proof may also verify at another size of the same shape: the size
        # is bound by the signed checkpoint that carries the root, not by the path.)


@pytest.mark.parametrize("size", range(1, 65))
def test_every_consistency_proof_of_every_small_tree(size: int) -> None:
    leaves = _leaves(size, salt=1)
    roots = [merkle.root(leaves[:m]) for m in range(size + 1)]
    reader = Tiled(leaves).reader()
    for old in range(size + 1):
        proof = merkle.consistency_proof(leaves, old)
        assert reader.consistency_proof(old) == proof
        merkle.verify_consistency(old, size, roots[old], roots[size], proof)
        if old in (0, size):
            continue
        for bit in (3, 200):
            with pytest.raises(InvalidProof):
                merkle.verify_consistency(old, size, _flip(roots[old], bit), roots[size], proof)
            with pytest.raises(InvalidProof):
                merkle.verify_consistency(old, size, roots[old], _flip(roots[size], bit), proof)
            for position in range(len(proof)):
                bad = [*proof]
                bad[position] = _flip(bad[position], bit)
                with pytest.raises(InvalidProof):
                    merkle.verify_consistency(old, size, roots[old], roots[size], bad)
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(old, size, roots[old], roots[size], proof[:-1])
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(old, size, roots[old], roots[size], [*proof, roots[0]])


def test_verifier_edge_cases() -> None:
    leaves = _leaves(5)
    root = merkle.root(leaves)
    with pytest.raises(InvalidProof, match="outside"):
        merkle.verify_inclusion(leaves[0], 5, 5, [], root)
    with pytest.raises(InvalidProof, match="32-byte"):
        merkle.verify_inclusion(leaves[0], 0, 5, [b"short"], root)
    with pytest.raises(InvalidProof, match="not a growth"):
        merkle.verify_consistency(5, 4, root, root, [])
    with pytest.raises(InvalidProof, match="must be empty"):
        merkle.verify_consistency(5, 5, root, root, [root])
    with pytest.raises(InvalidProof, match="different roots"):
        merkle.verify_consistency(5, 5, root, leaves[0], [])
    with pytest.raises(InvalidProof, match="empty"):
        merkle.verify_consistency(2, 5, merkle.root(leaves[:2]), root, [])
    merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root, [])
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(leaves, 5)
    with pytest.raises(ValueError, match="outside"):
        merkle.consistency_proof(leaves, 6)


# --- random trees -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), data=st.data())
def test_random_trees_agree_and_verify(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size, salt=2)
    batch = data.draw(st.integers(min_value=1, max_value=600))
    tiled = Tiled(leaves, batch=batch)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    root = merkle.root(leaves)
    assert tiled.reader().root() == root
    proof = tiled.reader().inclusion_proof(index)
    assert proof == merkle.inclusion_proof(leaves, index)
    merkle.verify_inclusion(leaves[index], index, size, proof, root)
    consistency = tiled.reader().consistency_proof(old)
    assert consistency == merkle.consistency_proof(leaves, old)
    merkle.verify_consistency(old, size, merkle.root(leaves[:old]), root, consistency)
    # Any smaller tree is served from the same tiles.
    smaller = data.draw(st.integers(min_value=1, max_value=size))
    assert tiled.reader(smaller).root() == merkle.root(leaves[:smaller])


def test_trees_spanning_three_tile_levels() -> None:
    """70,000 leaves: full and partial tiles at levels 0 and 1, a partial one at
    level 2 (the C2SP tlog-tiles example)."""
    leaves = _leaves(70_000, salt=3)
    tiled = Tiled(leaves, batch=1000)
    reader = tiled.reader()
    assert reader.root() == merkle.root(leaves)
    for index in (0, 255, 256, 65_535, 65_536, 69_999):
        assert reader.inclusion_proof(index) == merkle.inclusion_proof(leaves, index)
    for old in (1, 256, 65_536, 65_537, 69_999):
        assert reader.consistency_proof(old) == merkle.consistency_proof(leaves, old)
    reopened = RightEdge(70_000, tiled.tiles.get)
    reopened.push(_leaves(1, salt=4))
    tiled.tiles.update(reopened.take_dirty())
    assert TreeReader(70_001, tiled.tiles.get).root() == merkle.root(leaves + _leaves(1, salt=4))


def test_compact_range_root_equals_the_reference_at_every_size() -> None:
    from trustmesh.log.compact import CompactRange

    leaves = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(300)]
    compact = CompactRange()
    assert compact.root() == merkle.root([])
    for size, leaf in enumerate(leaves, start=1):
        compact.extend([leaf])
        assert compact.root() == merkle.root(leaves[:size]), size
    snapshot = compact.copy()
    compact.extend([leaves[0]])
    assert snapshot.root() == merkle.root(leaves) != compact.root()
