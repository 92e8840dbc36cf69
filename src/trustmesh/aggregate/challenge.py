"""Finding a claim's lie and the proof of it, as the Aggregates contract takes it
(pure: the logs are read through the callables passed in).

:func:`find_lie` compares a claim's published data with the honest claim over
the same snapshot and returns the first lie it can prove, as a
:class:`Challenge` (the contract method and its arguments after the claim's own
``(query, sizes, root)``), or None when the claim is true.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from trustmesh.aggregate.claim import Claim
from trustmesh.aggregate.query import MAX_AGGREGATE_ENTRY
from trustmesh.aggregate.tree import ZERO, Leaf, Opening, Step, SumTree
from trustmesh.errors import InvalidAggregate
from trustmesh.log.merkle import leaf_hash
from trustmesh.reading import Reading
from trustmesh.reputation.witness import subject_id

__all__ = ["Challenge", "Fetch", "Read", "find_lie"]

Fetch = Callable[[bytes, int, int], tuple[bytes, list[bytes]]]
"""(origin id, index, size) → the entry at index and its inclusion proof in the
anchored tree of that size."""
Read = Callable[[bytes], Reading | None]
"""An entry → the reading, if it is one the Disputes contract reads (parsed, an
ES256 signature by the Registry's key for its device and seq, an integer value);
else None."""

_NO_LEAF = (ZERO, 0, ZERO, ZERO, 0, 0, 0, 0)
_NO_OPENING = (ZERO, ZERO, 0, 0, 0, 0)


@dataclass(frozen=True)
class Challenge:
    kind: str  # wrong result, bad sum, wrong output, forged leaf, disorder, omitted
    reason: str
    method: str
    args: tuple[Any, ...]


# --- the arguments, in the contract's shapes ------------------------------------------


def leaf_abi(leaf: Leaf) -> tuple[Any, ...]:
    return (leaf.origin, leaf.index, leaf.leaf_hash, leaf.device, leaf.seq, leaf.ts,
            leaf.value, leaf.fx)  # fmt: skip


def opening_abi(opening: Opening) -> tuple[Any, ...]:
    return opening.a, opening.b, opening.count, opening.sum, opening.min, opening.max


def path_abi(path: list[Step]) -> list[tuple[Any, ...]]:
    return [(s.sibling.hash, s.sibling.count, s.sibling.sum, s.sibling.min, s.sibling.max,
             s.left) for s in path]  # fmt: skip


def placed(tree: SumTree, position: int) -> tuple[Any, ...]:
    return leaf_abi(tree.leaves[position]), path_abi(tree.path(position))


def _model_abi(claim: Claim) -> tuple[int, list[int]]:
    model = claim.query.model
    return int(model.kind), list(model.params)


# --- the lies -------------------------------------------------------------------------


def wrong_result(claim: Claim, posted_result: int, posted_count: int) -> Challenge | None:
    root = claim.tree.root
    top = claim.tree.opening(len(claim.tree.levels) - 1, 0)
    reason = ""
    if posted_count != root.count:
        reason = "the count is not the root's"
    elif root.count == 0:
        reason = "the root holds no readings"
    elif claim.query.result(root) != posted_result:
        reason = "the result does not follow from the root"
    if not reason:
        return None
    return Challenge("wrong result", reason, "prove_wrong_result", (opening_abi(top),))


def bad_sum(claim: Claim) -> Challenge | None:
    """The highest node whose totals are not its children's (only a patched node
    can be such: the rest are built as joins)."""
    tree = claim.tree
    for level, position in sorted(tree.patches, key=lambda at: (-at[0], at[1])):
        node = tree.opening(level, position)
        path = path_abi(tree.path(position, level))
        if level == 0:
            leaf = tree.leaves[position]
            if (node.count, node.sum, node.min, node.max) != (1, leaf.fx, leaf.fx, leaf.fx):
                return Challenge("bad sum", "a leaf node's totals are not its value's",
                                 "prove_bad_sum", (opening_abi(node), path, _NO_OPENING,
                                                   _NO_OPENING, leaf_abi(leaf)))  # fmt: skip
            continue
        below, first = tree.children(level, position)
        left, right = tree.node(below, first), tree.node(below, first + 1)
        if not node.adds_up(left, right):
            return Challenge("bad sum", "a node's totals are not its children's", "prove_bad_sum",
                             (opening_abi(node), path, opening_abi(tree.opening(below, first)),
                              opening_abi(tree.opening(below, first + 1)), _NO_LEAF))  # fmt: skip
    return None


def disorder(claim: Claim) -> Challenge | None:
    leaves = claim.tree.leaves
    for k, (a, b) in enumerate(pairwise(leaves)):
        if a.key >= b.key:
            return Challenge("disorder", "two leaves out of order", "prove_disorder",
                             (placed(claim.tree, k), placed(claim.tree, k + 1)))  # fmt: skip
    return None


def wrong_output(claim: Claim, position: int) -> Challenge | None:
    leaf = claim.tree.leaves[position]
    try:
        right = claim.query.model.apply(leaf.value)
    except InvalidAggregate:
        reason = "the model is not defined on the value"
    else:
        if right == leaf.fx:
            return None
        reason = "the model gives another output"
    return Challenge("wrong output", reason, "prove_wrong_output",
                     (placed(claim.tree, position), _model_abi(claim)))  # fmt: skip


def forged_leaf(claim: Claim, position: int, fetch: Fetch, read: Read) -> Challenge | None:
    """Whether the leaf is not the logged reading (or not one of the query)."""
    tree, query = claim.tree, claim.query
    leaf = tree.leaves[position]
    at = placed(tree, position)
    if leaf.device not in set(query.device_ids):
        below, above = query.device_neighbours(leaf.device)
        return Challenge("forged leaf", "its device is not in the query", "prove_foreign_device",
                         (at, [below.to_abi()] if below else [],
                          [above.to_abi()] if above else []))  # fmt: skip
    size = claim.size_of(leaf.origin)
    none: tuple[int, bytes, list[bytes]] = (0, b"", [])
    if size is None:
        return Challenge("forged leaf", "its log is not one the query reads",
                         "prove_forged_leaf", (at, none))  # fmt: skip
    if leaf.index >= size:
        return Challenge("forged leaf", "its index is outside the snapshot",
                         "prove_forged_leaf", (at, none))  # fmt: skip
    entry, proof = fetch(leaf.origin, leaf.index, size)
    logged = (leaf.index, entry, proof)
    reason = ""
    reading = read(entry)
    if leaf_hash(entry) != leaf.leaf_hash:
        reason = "the log holds another entry there"
    elif len(entry) > MAX_AGGREGATE_ENTRY:
        reason = "the entry is too long to aggregate"
    elif reading is None:
        reason = "the entry is not a valid reading"
    elif (subject_id(reading.did), reading.seq, reading.ts, reading.value) != (
        leaf.device,
        leaf.seq,
        leaf.ts,
        leaf.value,
    ):
        reason = "the reading is not the leaf"
    elif reading.sensor != query.sensor or not query.start <= reading.ts < query.end:
        reason = "the reading does not match the query"
    if not reason:
        return None
    return Challenge("forged leaf", reason, "prove_forged_leaf", (at, logged))


def omitted(claim: Claim, missing: Leaf, fetch: Fetch) -> Challenge:
    """The proof that ``missing`` (a leaf of the honest tree) is not in the claim's
    (sorted) tree."""
    tree, query = claim.tree, claim.query
    keys = [leaf.key for leaf in tree.leaves]
    after = bisect.bisect_right(keys, missing.key)
    before = [placed(tree, after - 1)] if after > 0 else []
    later = [placed(tree, after)] if after < len(keys) else []
    size = claim.size_of(missing.origin)
    assert size is not None  # an honest leaf is in the snapshot
    entry, proof = fetch(missing.origin, missing.index, size)
    device = query.device_proof(query.device_ids.index(missing.device))
    return Challenge("omitted", "a matching reading is not in the tree", "prove_omitted",
                     (before, later, query.log_ids.index(missing.origin),
                      (missing.index, entry, proof), device.to_abi(),
                      _model_abi(claim)))  # fmt: skip


def find_lie(
    claim: Claim,
    honest: Claim | None,
    posted_result: int,
    posted_count: int,
    fetch: Fetch,
    read: Read,
) -> Challenge | None:
    """The first provable lie of ``claim`` (the claimer's published data, posted with
    ``posted_result`` over ``posted_count`` readings) against ``honest`` (the true
    claim over the same snapshot; None if no reading matches), or None."""
    for check in (bad_sum, disorder):
        found = check(claim)
        if found:
            return found
    found = wrong_result(claim, posted_result, posted_count)
    if found:
        return found
    truth = {leaf.key: leaf for leaf in honest.tree.leaves} if honest else {}
    for position, leaf in enumerate(claim.tree.leaves):
        if truth.get(leaf.key) == leaf:
            continue
        found = wrong_output(claim, position) or forged_leaf(claim, position, fetch, read)
        if found:
            return found
    claimed = {leaf.key for leaf in claim.tree.leaves}
    for key, leaf in truth.items():
        if key not in claimed:
            return omitted(claim, leaf, fetch)
    return None
