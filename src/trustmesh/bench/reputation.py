"""Scoring and committing an epoch at scale, and the Reputation contract's gas.

A population of ``subjects`` with ``edges_per_subject`` witness attestations
each (16 by default, as in the issue's goal of 16M edges for 1M subjects), given
as columns (:class:`~trustmesh.reputation.columns.EpochColumns`): the table is
scored and committed (:func:`~trustmesh.reputation.table.compute_columns`: the
leaves hashed on up to two cores, the second starting once the graph is built);
``score_only_seconds`` is scoring alone, without the trees, measured after.
The baseline, measured in the same run on the same graph, is the bare power
iteration (numpy, every step kept): what no scoring of this graph can avoid. On
the embedded chain it measures the gas of posting a table (in the first round of
the ring and once a slot is reused), of a contract reading a score through its
proof (``ReputationGate.qualifies``, less the 21,000 any transaction pays; its
calldata included), and of proving a wrong trust value from 32 attesters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from typing import Any

import numpy as np

from trustmesh.bench._embedded import embedded_clients
from trustmesh.chain.reputation import ReputationContract, deploy_gate, deploy_reputation
from trustmesh.reputation import (
    Attestation,
    EpochInputs,
    Evidence,
    Kind,
    Params,
    ReputationTable,
    Stake,
    assemble_table,
    compute_epoch,
)
from trustmesh.reputation.columns import EpochColumns
from trustmesh.reputation.table import compute_columns
from trustmesh.reputation.trust import iterate_edges
from trustmesh.reputation.vector import score_columns

GOALS = {
    "subjects": 1_000_000,
    "edges": 16_000_000,
    "total_seconds_max": 15,
    "post_gas_max": 60_000,
    "read_gas_max": 25_000,
    "fraud_proof_gas_max": 1_500_000,
}
INTRINSIC_GAS = 21_000


def population(subjects: int, edges_per_subject: int, seed: int = 1) -> EpochInputs:
    """Subjects on a ring, each witnessing (mutually) ``edges_per_subject // 2`` others
    within fifty places, with readings logged and stake."""
    rng = random.Random(seed)
    ids = [hashlib.sha256(b"subject %d" % i).digest() for i in range(subjects)]
    refs = [hashlib.sha256(b"ref %d" % i).digest() for i in range(64)]
    attestations = []
    for i in range(subjects):
        for k in range(edges_per_subject // 2):
            j = (i + rng.randrange(1, 50)) % subjects
            attestations.append(Attestation(ids[i], ids[j], refs[k % 64]))
            attestations.append(Attestation(ids[j], ids[i], refs[k % 64]))
    evidence = [Evidence(s, Kind.READINGS_LOGGED, refs[0], 50) for s in ids]
    stakes = [Stake(s, 10**17 + i, 30) for i, s in enumerate(ids)]
    return EpochInputs(1, evidence, attestations, stakes)


def population_columns(subjects: int, edges_per_subject: int, seed: int = 1) -> EpochColumns:
    """:func:`population` built as columns (as a follower of many logs would keep
    it): the same shape of graph, evidence and stake, without an object an item."""
    rng = np.random.default_rng(seed)
    ids = [hashlib.sha256(b"subject %d" % i).digest() for i in range(subjects)]
    order = sorted(range(subjects), key=ids.__getitem__)
    place = np.empty(subjects, dtype=np.int64)  # ring position -> index in id order
    place[order] = np.arange(subjects)
    half = edges_per_subject // 2
    ring = np.repeat(np.arange(subjects), half)
    other = (ring + rng.integers(1, 50, len(ring))) % subjects
    reading = np.tile(np.arange(half) % 64, subjects)
    stake = np.empty(subjects, dtype=np.int64)
    stake[place] = 10**17 + np.arange(subjects)
    none = np.zeros(subjects, dtype=np.int64)
    return EpochColumns(
        epoch=1,
        subjects=[ids[i] for i in order],
        witness=np.r_[place[ring], place[other]],
        attested=np.r_[place[other], place[ring]],
        reading=np.r_[reading, reading],
        agrees=np.ones(2 * len(ring), dtype=np.bool_),
        ev_subject=np.arange(subjects, dtype=np.int64),
        ev_kind=np.full(subjects, int(Kind.READINGS_LOGGED), dtype=np.int64),
        ev_ref=np.tile(np.frombuffer(hashlib.sha256(b"ref 0").digest(), np.uint8), (subjects, 1)),
        ev_count=np.full(subjects, 50, dtype=np.int64),
        stake=stake,
        stake_age=np.full(subjects, 30, dtype=np.int64),
        alpha=none,
        beta=none,
    )


def scale(subjects: int, edges_per_subject: int, params: Params) -> dict[str, Any]:
    columns = population_columns(subjects, edges_per_subject)
    started = time.perf_counter()
    table = compute_columns(columns, params)
    total = time.perf_counter() - started
    scoring = time.perf_counter()
    scored = score_columns(columns, params)  # again, without the trees, for the split
    score_only = time.perf_counter() - scoring
    iterating = time.perf_counter()
    iterate_edges(scored.pretrust, scored.src, scored.dst, scored.weight, scored.out_weight, params)
    baseline = time.perf_counter() - iterating
    return {
        "subjects": subjects,
        "attestations": len(columns.witness),
        "edges": len(scored.src),
        "total_seconds": round(total, 3),
        "score_only_seconds": round(score_only, 3),
        "us_per_subject": round(total / subjects * 1e6, 2),
        "baseline_iteration_seconds": round(baseline, 3),
        "ratio_vs_iteration": round(total / baseline, 2) if baseline else None,
        "score_root": table.score_root.hex(),
    }


def gas(params: Params) -> dict[str, int]:
    """Gas of the contract's operations on the embedded chain (see the module doc)."""
    inputs = population(200, 80)  # enough attesters for a subject to keep 32
    first = compute_epoch(inputs, params)
    target = max(first.rows, key=lambda s: len(first.rows[s].attesters))
    with embedded_clients(2) as (_, (owner, prover)):
        address = deploy_reputation(owner, params, min_stake=10**15, window=600)
        attester, challenger = (
            ReputationContract(owner, address),
            ReputationContract(prover, address),
        )
        attester.join(10**15)
        posted_first = attester.post(first)["gasUsed"]
        owner.advance_time(601)
        gate = deploy_gate(owner, address, threshold=0)
        qualifies = gate.functions.qualifies(
            target, 1, first.rows[target].score, first.score_proof(target)
        )
        # sent as a transaction (a view function may be), so the gas is what it used
        read = owner.transact(qualifies)["gasUsed"] - INTRINSIC_GAS
        attester.finalize(1)
        reused = dataclasses.replace(inputs, epoch=65)  # the ring's slot of epoch 1
        posted_reused = attester.post(compute_epoch(reused, params))["gasUsed"]
        lie = _lie(compute_epoch(dataclasses.replace(inputs, epoch=2), params), target)
        attester.post(lie)
        proof = challenger.prove_wrong_trust(lie, target, params.steps)["gasUsed"]
    return {
        "post_first_round": posted_first,
        "post_ring_reused": posted_reused,
        "read_through_contract": read,
        "prove_wrong_trust": proof,
        "attesters": len(first.rows[target].attesters),
    }


def _lie(table: ReputationTable, subject: bytes) -> ReputationTable:
    trajectory = list(table.rows[subject].trajectory)
    trajectory[-1] += 1
    rows = [
        dataclasses.replace(row, trajectory=tuple(trajectory)) if row.subject == subject else row
        for row in table.rows.values()
    ]
    return assemble_table(table.epoch, table.params, rows)


def run(subjects: int = 1_000_000, edges_per_subject: int = 16) -> dict[str, Any]:
    """Measure; returns the JSON object that ``trustmesh bench reputation --json`` prints."""
    params = Params()
    return {
        "benchmark": "reputation",
        **scale(subjects, edges_per_subject, params),
        "gas": gas(params),
        "goals": GOALS,
    }
