"""Lying claims of each kind, made from an honest one (for the contract's and the
watcher's tests): each is the claim's published data, the result and the count
it is posted with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trustmesh.aggregate.claim import Claim, decode, encode
from trustmesh.aggregate.tree import Leaf, SumTree

KINDS = {
    "wrong result": "wrong result", "bad sum": "bad sum", "wrong output": "wrong output",
    "forged leaf": "forged leaf", "foreign device": "forged leaf", "omitted": "omitted",
    "disorder": "disorder",
}  # fmt: skip
"""Each lie, and the kind of proof that refutes it."""


def patched(claim: Claim, **tree_changes: Any) -> Claim:
    """The claim with other leaves or patches, as its published data decodes."""
    leaves = tree_changes.get("leaves", list(claim.tree.leaves))
    lying = SumTree(leaves, tree_changes.get("patches", {}), ordered=False)
    return decode(encode(replace(claim, tree=lying, result=claim.query.result(lying.root))))


def lies(claim: Claim, outsider: Leaf) -> dict[str, tuple[Claim, int, int]]:
    """(data, posted result, posted count) of each lie; ``outsider`` is a leaf of a
    logged reading by a device the query does not name. Needs 7 leaves or more."""
    leaves, model = list(claim.tree.leaves), claim.query.model
    hotter = leaves[2].value + 40
    forged = replace(leaves[2], value=hotter, fx=model.apply(hotter))
    miscounted = replace(leaves[3], fx=leaves[3].fx + 1)
    with_foreign = sorted([*leaves, outsider], key=lambda leaf: leaf.key)
    top, root = len(claim.tree.levels) - 1, claim.tree.root
    bad_root = {(top, 0): (root.count, root.sum + 5, root.min, root.max)}
    made = {
        "wrong result": patched(claim),
        "bad sum": patched(claim, patches=bad_root),
        "wrong output": patched(claim, leaves=[*leaves[:3], miscounted, *leaves[4:]]),
        "forged leaf": patched(claim, leaves=[*leaves[:2], forged, *leaves[3:]]),
        "foreign device": patched(claim, leaves=with_foreign),
        "omitted": patched(claim, leaves=[*leaves[:5], *leaves[6:]]),
        "disorder": patched(claim, leaves=[*leaves[:6], *leaves[5:]]),
    }
    posted = {kind: (data, data.result, data.count) for kind, data in made.items()}
    posted["wrong result"] = (made["wrong result"], claim.result + 1, claim.count)
    posted["bad sum"] = (made["bad sum"], claim.result, claim.count)
    return posted
