"""Aggregates: how fast a claim's commitment is built, and the gas of posting a
claim and of proving each kind of lie at 10^3, 10^6 and 10^9 readings.

The build rate is the Merkle-sum tree over N leaves, against a plain Merkle tree
(keccak, sorted pairs) over the same leaves, timed in the same run. Gas is
deterministic, measured once per operation on a fresh embedded chain, against
the baseline of checking every reading on-chain (N times the gas of one
``verify_reading``, measured in the same run). The large sizes are computable as
the chain benchmark makes them: the log is N copies of one signed reading (any
inclusion proof is O(log N) to make), and the claimer's tree is N leaves of
which only the ones a challenge opens are real, every other complete subtree a
filler node with the right count; the contract sees the same path lengths and
the same checks as in any tree of that size.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from trustmesh.aggregate.challenge import leaf_abi, opening_abi, path_abi
from trustmesh.aggregate.model import Model
from trustmesh.aggregate.query import Query, Reduction
from trustmesh.aggregate.tree import Leaf, Node, Opening, Step, SumTree, joined
from trustmesh.bench.chain import UniformTree
from trustmesh.chain.aggregates import AggregatesContract, deploy_aggregates
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import Disputes, LogAnchor, Registry, deploy_suite, origin_id
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.merkle import leaf_hash
from trustmesh.log.note_p256 import LogSigner
from trustmesh.reading import parse_reading, sign_reading
from trustmesh.reputation.merkle import MerkleTree, keccak256

SIZES = {"10^3": 10**3, "10^6": 10**6, "10^9": 10**9}
QUERY_DEVICES = 1024
TS, SEQ, VALUE = 1_700_000_000_000, 1_000, 31
GOALS = {"challenge_gas_max": 1_000_000, "post_gas_max": 120_000, "build_10^6_s_max": 10.0}
# The deepest model a claim can commit: a full decision tree of 15 nodes.
MODEL = Model.tree([(16 + k, 2 * k + 1 if k < 7 else -(2 * k - 13),
                     2 * k + 2 if k < 7 else -(2 * k - 12)) for k in range(15)],
                   list(range(16)))  # fmt: skip

Progress = Callable[[str], None]
Patches = dict[tuple[int, int], tuple[int, int, int, int]]
Case = tuple["VirtualTree", str, Callable[["VirtualTree"], tuple[Any, ...]], int | None]


def run(readings: int = 10**6, progress: Progress | None = None) -> dict[str, Any]:
    """Measure; returns the JSON object ``trustmesh bench aggregate --json`` prints."""
    say = progress or (lambda _: None)
    say(f"building a claim's tree over {readings:,} readings…")
    build = _build_rate(readings)
    with tempfile.TemporaryDirectory() as tmp:
        chain = EmbeddedChain.open(Path(tmp) / "chain")
        try:
            client = ChainClient(chain.w3, chain.dev_account, advance_time=chain.advance_time)
            gas = _gas(client, say)
        finally:
            chain.close()
    worst = {label: max(kinds.values()) for label, kinds in gas["challenge"].items()}
    return {
        "benchmark": "aggregate",
        **build,
        **gas,
        "worst_challenge_gas": worst,
        "goals": GOALS,
        "goals_met": {
            "challenge_gas_at_10^9": worst["10^9"] <= GOALS["challenge_gas_max"],
            "post_gas": max(gas["post_gas"].values()) <= GOALS["post_gas_max"],
            "build_10^6_s": build["build_10^6_s"] <= GOALS["build_10^6_s_max"],
        },
    }


# --- the build rate ------------------------------------------------------------------


def _build_rate(n: int) -> dict[str, Any]:
    rng = random.Random(1)
    ids = sorted(hashlib.sha256(b"%d" % k).digest() for k in range(max(1, n // 1000)))
    origin = origin_id("bench.example")
    leaves = []
    for k in range(n):
        value = rng.randrange(-50, 50)
        leaves.append(Leaf(origin, k, keccak256(b"%d" % k), ids[k * len(ids) // n], k, TS + k,
                           value, MODEL.apply(value)))  # fmt: skip
    start = time.perf_counter()
    tree = SumTree(leaves)
    built = time.perf_counter() - start
    start = time.perf_counter()
    plain = MerkleTree([keccak256(leaf.encode()) for leaf in leaves])
    baseline = time.perf_counter() - start
    assert tree.root.count == n and plain.root
    return {
        "readings": n,
        "build_readings_per_s": round(n / built),
        "plain_merkle_readings_per_s": round(n / baseline),
        "build_vs_plain_merkle": round(baseline / built, 3),
        "build_10^6_s": round(built * 10**6 / n, 2),
    }


# --- gas -----------------------------------------------------------------------------


class VirtualTree:
    """A claim's tree of ``n`` leaves where only ``leaves`` (position → leaf) are
    real and every other complete subtree is a filler node; ``patches`` as in
    SumTree. Paths and openings are those of a tree of that size."""

    def __init__(self, n: int, leaves: dict[int, Leaf], patches: Patches | None = None) -> None:
        self.n, self.leaves, self.patches = n, leaves, patches or {}
        self.top = max(0, (n - 1).bit_length())
        self.node = cache(self._node)

    def _exists(self, level: int, position: int) -> bool:
        return position << level < self.n

    def _special(self, level: int, position: int) -> bool:
        low, high = position << level, (position + 1) << level
        return any(low <= p < high for p in self.leaves)

    def opening(self, level: int, position: int) -> Opening:
        while level > 0 and not self._exists(level - 1, 2 * position + 1):
            level, position = level - 1, 2 * position
        if level == 0:
            made = self.leaves[position].opening()
        else:
            made = joined(
                self.node(level - 1, 2 * position), self.node(level - 1, 2 * position + 1)
            )
        patch = self.patches.get((level, position))
        return made if patch is None else Opening(made.a, made.b, *patch)

    def _node(self, level: int, position: int) -> Node:
        if not self._special(level, position):
            count = min(self.n, (position + 1) << level) - (position << level)
            filler = keccak256(b"filler %d %d" % (level, position))
            return Node(filler, count, count * VALUE, VALUE, VALUE)
        return self.opening(level, position).node()

    @property
    def root(self) -> Node:
        return self.node(self.top, 0)

    def path(self, position: int, level: int = 0) -> list[Step]:
        steps = []
        for at in range(level, self.top):
            sibling = position ^ 1
            if self._exists(at, sibling):
                steps.append(Step(self.node(at, sibling), left=sibling < position))
            position //= 2
        return steps

    def placed(self, position: int) -> tuple[Any, ...]:
        return leaf_abi(self.leaves[position]), path_abi(self.path(position))


def _gas(client: ChainClient, say: Progress) -> dict[str, Any]:
    deployment = deploy_suite(client)
    contracts = deploy_aggregates(
        client, deployment.contracts["LogAnchor"], deployment.contracts["Disputes"], window=3600
    )
    aggregates = AggregatesContract(client, contracts["Aggregates"])
    registry, anchor = Registry(client, deployment), LogAnchor(client, deployment)
    disputes = Disputes(client, deployment)
    stake = registry.min_stake()
    devices = [SoftwareSigner.generate() for _ in range(QUERY_DEVICES)]
    dids = [did_from_key(d.public_key) for d in devices]
    device = devices[0]
    registry.register_device(dids[0], stake)
    entry = sign_reading(device, seq=SEQ, ts=TS, sensor="temperature", value=VALUE)
    out: dict[str, Any] = {"post_gas": {}, "release_gas": {}, "challenge": {},
                           "proof_bytes": {}, "verify_every_reading_gas": {}}  # fmt: skip
    verify_gas: int | None = None
    for label, n in SIZES.items():
        say(f"claims and challenges at {label} readings…")
        origin = f"bench.example/{label}"
        registry.register_log(LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1",
                              stake)  # fmt: skip
        log = UniformTree(n, entry)
        anchor.anchor(origin, n, log.root(), [])
        index = n // 2
        inclusion = log.inclusion_proof(index)
        if verify_gas is None:
            fn = disputes.contract.functions.verify_reading(origin, n, index, entry, inclusion)
            verify_gas = int(fn.estimate_gas())
        query = Query(frozenset(dids), frozenset([origin]), "temperature", TS - 10**6, TS + 10**6,
                      MODEL, Reduction.SUM)  # fmt: skip
        bench = _Claims(aggregates, query, n, entry, index, inclusion)
        gas, sizes, posts = bench.all()
        out["challenge"][label] = gas
        out["proof_bytes"][label] = sizes
        out["post_gas"][label] = max(posts)
        out["release_gas"][label] = bench.release()
        out["verify_every_reading_gas"][label] = verify_gas * n
    out["verify_reading_gas"] = verify_gas
    out["worst_challenge_vs_verify_every_reading"] = {
        label: float(f"{max(kinds.values()) / out['verify_every_reading_gas'][label]:.3g}")
        for label, kinds in out["challenge"].items()
    }
    return out


class _Claims:
    """Lying claims over one log of ``n`` readings, posted and proven."""

    def __init__(self, aggregates: AggregatesContract, query: Query, n: int, entry: bytes,
                 index: int, inclusion: list[bytes]) -> None:  # fmt: skip
        self.aggregates, self.query, self.n = aggregates, query, n
        self.entry, self.index, self.inclusion = entry, index, inclusion
        self.device = hashlib.sha256(parse_reading(entry).did.encode()).digest()
        self.position = (n // 2) & ~1
        self.posts: list[int] = []
        self.honest: tuple[Any, ...] | None = None

    def leaf(self, seq: int = SEQ, value: int = VALUE, fx: int | None = None,
             device: bytes | None = None) -> Leaf:  # fmt: skip
        return Leaf(origin_id(next(iter(self.query.logs))), self.index, leaf_hash(self.entry),
                    device or self.device, seq, TS, value,
                    MODEL.apply(value) if fx is None else fx)  # fmt: skip

    def post(self, tree: VirtualTree, result: int | None = None) -> tuple[Any, list[int], bytes]:
        claim = (self.query.to_abi(), [self.n], tree.root.hash)
        result = tree.root.sum if result is None else result
        _, receipt = self.aggregates.post(claim, result, tree.root.count, "https://claims.example")
        self.posts.append(int(receipt["gasUsed"]))
        return claim

    def prove(self, tree: VirtualTree, method: str, args: tuple[Any, ...],
              result: int | None = None) -> tuple[int, int]:  # fmt: skip
        claim = self.post(tree, result)
        receipt = self.aggregates.challenge(claim, method, args)
        self.aggregates.refuted(receipt)  # raises unless the claim was refuted
        tx = self.aggregates.client.w3.eth.get_transaction(receipt["transactionHash"])
        return int(receipt["gasUsed"]), len(bytes(tx["input"]))

    def all(self) -> tuple[dict[str, int], dict[str, int], list[int]]:
        p, q = self.position, self.query
        model = (int(MODEL.kind), list(MODEL.params))
        logged = (self.index, self.entry, self.inclusion)
        cases: dict[str, Case] = {}
        pair = {p: self.leaf(SEQ - 1), p + 1: self.leaf(SEQ + 1)}
        cases["wrong result"] = (VirtualTree(self.n, pair), "prove_wrong_result",
                                 lambda t: (opening_abi(t.opening(t.top, 0)),), -1)  # fmt: skip
        bad = VirtualTree(self.n, pair, {(1, p // 2): (2, 0, 0, 0)})
        cases["bad sum"] = (bad, "prove_bad_sum", lambda t: (
            opening_abi(t.opening(1, p // 2)), path_abi(t.path(p // 2, 1)),
            opening_abi(t.opening(0, p)), opening_abi(t.opening(0, p + 1)),
            leaf_abi(t.leaves[p])), None)  # fmt: skip
        wrong_f = {p: self.leaf(SEQ - 1, fx=MODEL.apply(VALUE) + 1)}
        cases["wrong output"] = (VirtualTree(self.n, wrong_f), "prove_wrong_output",
                                 lambda t: (t.placed(p), model), None)  # fmt: skip
        forged = {p: self.leaf(value=VALUE + 9)}
        cases["forged leaf"] = (VirtualTree(self.n, forged), "prove_forged_leaf",
                                lambda t: (t.placed(p), logged), None)  # fmt: skip
        outsider = bytes(32)
        below, above = q.device_neighbours(outsider)
        foreign = {p: self.leaf(device=outsider)}
        cases["foreign device"] = (VirtualTree(self.n, foreign), "prove_foreign_device",
                                   lambda t: (t.placed(p), [below.to_abi()] if below else [],
                                              [above.to_abi()] if above else []), None)  # fmt: skip
        swapped = {p: self.leaf(SEQ + 1), p + 1: self.leaf(SEQ - 1)}
        cases["disorder"] = (VirtualTree(self.n, swapped), "prove_disorder",
                             lambda t: (t.placed(p), t.placed(p + 1)), None)  # fmt: skip
        member = q.device_proof(q.device_ids.index(self.device)).to_abi()
        cases["omitted"] = (VirtualTree(self.n, pair), "prove_omitted", lambda t: (
            [t.placed(p)], [t.placed(p + 1)], 0, logged, member, model), None)  # fmt: skip
        gas, sizes = {}, {}
        for kind, (tree, method, args, result) in cases.items():
            posted = None if result is None else tree.root.sum + 1
            gas[kind], sizes[kind] = self.prove(tree, method, args(tree), posted)
        return gas, sizes, self.posts

    def release(self) -> int:
        tree = VirtualTree(self.n, {self.position: self.leaf()})
        claim = self.post(tree)
        claim_id = self.aggregates.contract.functions.claim_id(
            self.query.hash, claim[1], claim[2]).call()  # fmt: skip
        self.aggregates.client.advance_time(3601)
        return int(self.aggregates.release(claim_id)["gasUsed"])
