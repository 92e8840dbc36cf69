"""The Merkle-sum tree: its root carries the totals of every reading under it,
every node (a leaf or an inner one) has a path to the root, and any change to a
leaf moves the root."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmesh.aggregate import Model, Query, Reduction
from trustmesh.aggregate.challenge import bad_sum
from trustmesh.aggregate.claim import Claim
from trustmesh.aggregate.tree import Leaf, Node, Opening, Step, SumTree, check_path, root_from_path
from trustmesh.errors import InvalidAggregate, InvalidProof
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.reputation.merkle import keccak256


def _id(n: int) -> bytes:
    return hashlib.sha256(b"%d" % n).digest()


@st.composite
def leaf_lists(draw: st.DrawFn) -> list[Leaf]:
    keys = draw(st.sets(st.tuples(st.integers(0, 5), st.integers(0, 10**6)), min_size=1,
                        max_size=70))  # fmt: skip
    leaves = [
        Leaf(_id(1000 + device % 2), index, _id(index), _id(device), seq, 1_700_000_000 + seq,
             draw(st.integers(-(10**9), 10**9)), draw(st.integers(-(10**12), 10**12)))
        for index, (device, seq) in enumerate(keys)
    ]  # fmt: skip
    return sorted(leaves, key=lambda leaf: leaf.key)


@settings(max_examples=100, deadline=None)
@given(leaf_lists())
def test_the_root_carries_the_totals_and_every_node_proves_its_place(leaves: list[Leaf]) -> None:
    tree = SumTree(leaves)
    fx = [leaf.fx for leaf in leaves]
    root = tree.root
    assert (root.count, root.sum, root.min, root.max) == (len(fx), sum(fx), min(fx), max(fx))
    for position, leaf in enumerate(leaves):
        check_path(leaf.node(), tree.path(position), root)
    for level in range(1, len(tree.levels)):
        for position, node in enumerate(tree.levels[level]):
            assert root_from_path(node, tree.path(position, level)) == root


@settings(max_examples=100, deadline=None)
@given(leaf_lists(), st.data())
def test_any_change_to_a_leaf_moves_the_root(leaves: list[Leaf], data: st.DataObject) -> None:
    tree = SumTree(leaves)
    position = data.draw(st.integers(0, len(leaves) - 1))
    leaf = leaves[position]
    field = data.draw(st.sampled_from(["origin", "index", "leaf_hash", "ts", "value", "fx"]))
    old = getattr(leaf, field)
    new: object = (
        _id(7)
        if isinstance(old, bytes) and old != _id(7)
        else (_id(8) if isinstance(old, bytes) else old + 1)
    )
    changed = replace(leaf, **{field: new})  # type: ignore[arg-type]
    with pytest.raises(InvalidProof):
        check_path(changed.node(), tree.path(position), tree.root)


def test_leaves_out_of_order_or_repeated_or_none_are_refused() -> None:
    a = Leaf(_id(1), 0, _id(2), _id(3), 5, 0, 1, 1)
    b = replace(a, seq=6)
    with pytest.raises(InvalidAggregate, match="not sorted"):
        SumTree([b, a])
    with pytest.raises(InvalidAggregate, match="not sorted"):
        SumTree([a, a])
    with pytest.raises(InvalidAggregate, match="at least one"):
        SumTree([])
    assert SumTree([a, b]).root.count == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**255), 2**255 - 1), min_size=8, max_size=8))
def test_a_leaf_is_encoded_as_abi_encode_does(values: list[int]) -> None:
    """The hand-packed words are eth_abi's ``abi.encode`` of the leaf's fields."""
    from eth_abi.abi import encode

    leaf = Leaf(_id(1), abs(values[0]), _id(2), _id(3), abs(values[1]), abs(values[2]),
                values[3], values[4])  # fmt: skip
    types = ["bytes32", "uint256", "bytes32", "bytes32", "uint256", "uint256", "int256",
             "int256"]  # fmt: skip
    assert leaf.encode() == encode(types, [leaf.origin, leaf.index, leaf.leaf_hash,
                                           leaf.device, leaf.seq, leaf.ts, leaf.value,
                                           leaf.fx])  # fmt: skip
    opening = leaf.opening()
    assert opening.node().hash == keccak256(encode(
        ["bytes32", "bytes32", "uint256", "int256", "int256", "int256"],
        [opening.a, opening.b, 1, values[4], values[4], values[4]],
    ))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(leaf_lists(), st.data())
def test_a_patched_node_is_the_one_bad_sum_finds_and_its_proof_leads_to_the_root(
    leaves: list[Leaf], data: st.DataObject
) -> None:
    honest = SumTree(leaves)
    level = data.draw(st.integers(0, len(honest.levels) - 1))
    position = data.draw(st.integers(0, len(honest.levels[level]) - 1))
    made_level, _ = honest.children(level, position)  # where the node was made, minus one
    made_level += 1
    made_position = position << (level - made_level)
    node = honest.node(level, position)
    patch = (node.count + 1, node.sum, node.min, node.max)
    lying = SumTree(leaves, {(made_level, made_position): patch})
    assert lying.root.hash != honest.root.hash
    device = did_from_key(SoftwareSigner.generate().public_key)
    query = Query(frozenset([device]), frozenset(["log.example"]), "t", 0, 1, Model.identity(),
                  Reduction.SUM)  # fmt: skip
    found = bad_sum(Claim(query, (1,), lying, 0))
    assert found is not None and found.method == "prove_bad_sum"
    opened, path = found.args[0], found.args[1]
    start = Opening(*opened).node()
    steps = [Step(Node(*step[:5]), left=step[5]) for step in path]
    assert root_from_path(start, steps).hash == lying.root.hash
    assert (start.count, start.sum) == (patch[0], patch[1])
