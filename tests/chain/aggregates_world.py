"""The world the Aggregates tests run in (tests/chain/test_aggregates.py and the
state machine in tests/reliability/test_aggregate_invariants.py): registered
devices' signed readings in an anchored log, and the contract through a claimer
and a prover; a challenge of every kind aimed at an honest claim, and why each
fails; a claimer contract that refuses its bonds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.chain.conftest import Net
from trustmesh.aggregate import Model, Query, Reduction
from trustmesh.aggregate.claim import Claim, LoggedReading, build, read_as_chain
from trustmesh.aggregate.tree import Leaf
from trustmesh.chain.aggregates import AggregatesContract
from trustmesh.chain.suite import (
    Deployment,
    LogAnchor,
    Registry,
    device_id,
    key_from_chain,
    origin_id,
)
from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key
from trustmesh.log.store import LogStore
from trustmesh.reading import parse_reading

TS = 1_700_000_000_000


@dataclass
class World:
    """A log of readings by registered devices, anchored, and the Aggregates
    contract through a claimer and a prover; what a checker fetches and reads."""

    net: Net
    deployment: Deployment
    registry: Registry
    anchor: LogAnchor
    store: LogStore
    origin: str
    devices: list[SoftwareSigner]
    outsider: SoftwareSigner  # registered, logged, not in the query
    claimer: AggregatesContract
    prover: AggregatesContract

    def key_for(self, did: str, seq: int) -> PublicKey | None:
        if self.registry.device(did)["status"] == "unknown":
            return None
        alg, raw, _, _ = self.registry.key_at(did, seq)
        return key_from_chain(alg, raw)

    def fetch(self, origin: bytes, index: int, size: int) -> tuple[bytes, list[bytes]]:
        assert origin == origin_id(self.origin)
        return self.store.entry(index), self.store.inclusion_proof(index, size)

    def read(self, entry: bytes) -> Any:
        return read_as_chain(entry, self.key_for)

    def query(self, **changes: Any) -> Query:
        fields: dict[str, Any] = {
            "devices": frozenset(did_from_key(d.public_key) for d in self.devices),
            "logs": frozenset([self.origin]), "sensor": "temperature", "start": TS,
            "end": TS + 100, "model": Model.threshold(30), "reduction": Reduction.SUM,
        }  # fmt: skip
        return Query(**{**fields, **changes})

    def honest(self, query: Query) -> Claim:
        size = self.store.size
        logged = [
            LoggedReading(origin_id(self.origin), i, parse_reading(self.store.entry(i)))
            for i in range(size)
        ]
        return build(query, {origin_id(self.origin): size}, logged)

    def post(self, claim: Claim, result: int | None = None, count: int | None = None) -> bytes:
        claim_id, _ = self.claimer.post(
            claim.to_abi(),
            claim.result if result is None else result,
            claim.count if count is None else count,
            "https://claims.example/1",
        )
        return claim_id


WRONG_CHALLENGES = [
    "the result follows from the root",
    "the node adds up",
    "the output is right",
    "the leaf is the logged reading",
    "the leaves are in order",
    "the reading is not after the leaf before",
]  # why each challenge of an honest claim fails


def all_challenges(world: World, claim: Claim) -> list[tuple[str, tuple[Any, ...]]]:
    """A challenge of every kind aimed at an honest claim's first leaf."""
    from trustmesh.aggregate import challenge as c

    tree = claim.tree
    entry, proof = world.fetch(tree.leaves[0].origin, tree.leaves[0].index, claim.sizes[0])
    top = tree.opening(len(tree.levels) - 1, 0)
    below, first = tree.children(len(tree.levels) - 1, 0)
    missing = claim.query.device_proof(0)
    return [
        ("prove_wrong_result", (c.opening_abi(top),)),
        ("prove_bad_sum", (c.opening_abi(top), [], c.opening_abi(tree.opening(below, first)),
                           c.opening_abi(tree.opening(below, first + 1)), c._NO_LEAF)),
        ("prove_wrong_output", (c.placed(tree, 0), c._model_abi(claim))),
        ("prove_forged_leaf", (c.placed(tree, 0), (tree.leaves[0].index, entry, proof))),
        ("prove_disorder", (c.placed(tree, 0), c.placed(tree, 1))),
        ("prove_omitted", ([c.placed(tree, 0)], [c.placed(tree, 1)], 0,
                           (tree.leaves[0].index, entry, proof), missing.to_abi(),
                           c._model_abi(claim))),
    ]  # fmt: skip


def outsider_leaf(world: World, model: Model) -> Leaf:
    """A leaf of a logged reading by a device the query does not name."""
    for index in range(world.store.size):
        reading = parse_reading(world.store.entry(index))
        if reading.did == did_from_key(world.outsider.public_key):
            value = reading.value
            assert isinstance(value, int)
            return Leaf(origin_id(world.origin), index, world.store.leaf_hash(index),
                        device_id(reading.did), reading.seq, reading.ts, value,
                        model.apply(value))  # fmt: skip
    raise AssertionError("the outsider logged nothing")


REFUSING_CLAIMER = """
# pragma version ~=0.4.3
# A claimer that is a contract: it sends the calls it is given (a post, a collect)
# as its own, and refuses every payment until it is told to accept them.
accepting: bool

@external
@payable
def forward(to: address, data: Bytes[4096]):
    raw_call(to, data, value=msg.value)

@external
def accept():
    self.accepting = True

@external
@payable
def __default__():
    assert self.accepting, "refused"
"""
