"""A claim's published data: it round-trips, and anything else is refused with
InvalidAggregate (never another error: a node keeps data anyone sends)."""

from __future__ import annotations

import hashlib

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustmesh.aggregate import Model, Query, Reduction
from trustmesh.aggregate.claim import Claim, decode, encode
from trustmesh.aggregate.tree import Leaf, SumTree
from trustmesh.errors import InvalidAggregate
from trustmesh.identity import SoftwareSigner, did_from_key

DIDS = [did_from_key(SoftwareSigner.generate().public_key) for _ in range(3)]
QUERY = Query(frozenset(DIDS), frozenset(["log.example"]), "t", 0, 1000, Model.threshold(5),
              Reduction.SUM)  # fmt: skip


def _claim() -> Claim:
    origin = hashlib.sha256(b"log.example").digest()
    leaves = sorted(
        (Leaf(origin, k, bytes([k]) * 32, QUERY.device_ids[k % 3], k, k, k, int(k >= 5))
         for k in range(9)), key=lambda leaf: leaf.key,
    )  # fmt: skip
    tree = SumTree(leaves)
    return Claim(QUERY, (9,), tree, QUERY.result(tree.root))


def test_a_claims_data_round_trips() -> None:
    claim = _claim()
    again = decode(encode(claim))
    assert (again.id, again.root, again.result, again.count) == (
        claim.id, claim.root, claim.result, claim.count
    )  # fmt: skip
    assert again.query == claim.query and again.tree.leaves == claim.tree.leaves


def _mutations() -> st.SearchStrategy[object]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                        st.binary(max_size=40), st.integers(min_value=2**255))  # fmt: skip
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=12)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_anything_else_is_refused_as_invalid_aggregate(data: st.DataObject) -> None:
    document = cbor2.loads(encode(_claim()))
    path = data.draw(st.sampled_from([
        ("query", "devices"), ("query", "logs"), ("query", "sensor"), ("query", "start"),
        ("query", "end"), ("query", "reduction"), ("query", "model", "kind"),
        ("query", "model", "params"), ("sizes",), ("result",), ("leaves",), ("patches",),
    ]))  # fmt: skip
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_mutations())
    assert _judged(cbor2.dumps(document)) in {"Claim", "refused"}
    for raw in (b"", b"\xff", data.draw(st.binary(max_size=64))):
        assert _judged(raw) == "refused"


def _judged(raw: bytes) -> str:
    """ "Claim" if ``raw`` decodes, "refused" if InvalidAggregate says why (any other
    error fails the test)."""
    try:
        return type(decode(raw)).__name__
    except InvalidAggregate:
        return "refused"
