"""An epoch's table: deterministic, explainable, every row provable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings

from tests.reputation.strategies import epoch_inputs, ref, subject
from trustmesh.errors import InvalidEvidence
from trustmesh.reputation import (
    ONE,
    UNIT,
    Attestation,
    BetaState,
    EpochInputs,
    Evidence,
    Kind,
    Params,
    Stake,
    check_proof,
    compute_epoch,
    params_digest,
)


@settings(max_examples=60, deadline=None)
@given(epoch_inputs())
def test_both_engines_commit_the_same_table(inputs: EpochInputs) -> None:
    numpy_table = compute_epoch(inputs, engine="numpy")
    reference = compute_epoch(inputs, engine="reference")
    assert numpy_table.score_root == reference.score_root
    assert numpy_table.rows == reference.rows
    epoch = inputs.epoch
    for subject_id, row in reference.rows.items():
        assert 0 <= row.score <= row.beta_score < ONE
        check_proof(reference.score_proof(subject_id), reference.score_root, row.score_leaf(epoch))
        check_proof(reference.state_proof(subject_id), reference.state_root, row.state_leaf(epoch))
    ordered = sorted(reference.rows)  # the leaves chain in id order, the last to zero
    following = [*ordered[1:], bytes(32)][: len(ordered)]
    for position, (subject_id, after) in enumerate(zip(ordered, following, strict=True)):
        row = reference.rows[subject_id]
        assert (row.position, row.next) == (position, after)
    check_proof(reference.meta_proof(), reference.score_root, reference.meta_leaf)
    assert reference.meta_values[2:4] == [reference.state_root, len(reference.rows)]


_TWO_PROCESSES = """
import hashlib, json, sys
from trustmesh.reputation import Attestation, EpochInputs, Evidence, Kind, Stake, compute_epoch
ids = [hashlib.sha256(b"%d" % i).digest() for i in range(40)]
kinds = [k for k in Kind if k not in (Kind.WITNESSED, Kind.WITNESS_DISAGREES, Kind.CONTRADICTED)]
inputs = EpochInputs(
    epoch=7,
    evidence=[Evidence(ids[i], kinds[i % len(kinds)], ids[(i * 7) % 40], 1 + i) for i in range(40)],
    attestations=[
        Attestation(ids[i], ids[(i * 3 + 1) % 40], ids[i % 5], i % 4 != 0) for i in range(40)
    ],
    stakes=[Stake(ids[i], 10**18 + i, i) for i in range(0, 40, 3)],
)
table = compute_epoch(inputs, engine=sys.argv[1])
print(json.dumps([table.score_root.hex(), table.state_root.hex()]))
"""


def test_two_processes_and_two_engines_agree() -> None:
    roots = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _TWO_PROCESSES, engine],
                check=True, capture_output=True, text=True, env={"PYTHONHASHSEED": seed},
            ).stdout
        )
        for engine, seed in (("numpy", "1"), ("reference", "2"), ("numpy", "3"))
    ]  # fmt: skip
    assert roots[0] == roots[1] == roots[2]


def test_scores_follow_evidence_and_stake() -> None:
    node, good, liar, sybil = (subject(i) for i in range(4))
    evidence = [Evidence(good, Kind.READINGS_LOGGED, ref(1), 100)]
    evidence += [Evidence(liar, Kind.READINGS_LOGGED, ref(2), 100)]
    evidence += [Evidence(liar, Kind.EQUIVOCATION, ref(3))]
    evidence += [Evidence(sybil, Kind.READINGS_LOGGED, ref(4), 100)]
    attestations = [Attestation(node, good, ref(5)), Attestation(node, liar, ref(6))]
    attestations += [Attestation(good, node, ref(8)), Attestation(liar, node, ref(9))]
    attestations += [Attestation(sybil, good, ref(7))]  # (one-way: no edge)
    stakes = [Stake(node, 10**18, 30), Stake(good, 10**17, 30), Stake(liar, 10**17, 30)]
    table = compute_epoch(EpochInputs(3, evidence, attestations, stakes))
    rows = table.rows
    assert rows[good].score > rows[liar].score > 0
    assert rows[sybil].score == 0 < rows[sybil].beta_score  # good-looking, vouched for by nobody
    assert rows[liar].beta_score < ONE // 10  # one equivocation outweighs 100 readings
    explained = rows[liar].explain()
    counts = explained["counts"]
    assert (counts["readings_logged"], counts["equivocation"]) == (100, 1)
    assert set(counts) <= {"readings_logged", "equivocation", "witnessed"}
    assert {item["ref"] for item in explained["evidence"]} == {ref(2).hex(), ref(3).hex()}
    assert explained["attesters"] == [{"id": node.hex(), "weight": 1}]
    json.dumps(explained)  # JSON-ready


def test_forgetting_carries_state_into_the_next_epoch() -> None:
    device = subject(0)
    first = compute_epoch(EpochInputs(1, [Evidence(device, Kind.EQUIVOCATION, ref(0))]))
    assert first.rows[device].state == BetaState(0, 1_000 * UNIT)
    quiet = compute_epoch(EpochInputs(2, previous=first.states()))
    assert quiet.rows[device].state == BetaState(0, 980 * UNIT)  # bad evidence: 49/50 kept
    assert quiet.rows[device].beta_score > first.rows[device].beta_score


def test_good_evidence_is_capped_per_epoch_and_bad_is_not() -> None:
    device = subject(0)
    flood = compute_epoch(EpochInputs(1, [Evidence(device, Kind.READINGS_LOGGED, ref(0), 10**6)]))
    steady = compute_epoch(EpochInputs(1, [Evidence(device, Kind.READINGS_LOGGED, ref(0), 100)]))
    assert flood.rows[device].state == steady.rows[device].state
    many = compute_epoch(EpochInputs(1, [Evidence(device, Kind.SEQ_GAP, ref(0), 1_000)]))
    assert many.rows[device].state.beta == 1_000 * 5 * UNIT


def test_commitment_binds_epoch_params_and_evidence() -> None:
    device = subject(0)
    inputs = EpochInputs(1, [Evidence(device, Kind.READINGS_LOGGED, ref(0), 5)])
    base = compute_epoch(inputs)
    assert compute_epoch(EpochInputs(2, inputs.evidence)).score_root != base.score_root
    assert compute_epoch(inputs, Params(steps=5)).score_root != base.score_root
    assert params_digest(Params(steps=5)) != params_digest(Params())
    other_ref = EpochInputs(1, [Evidence(device, Kind.READINGS_LOGGED, ref(1), 5)])
    changed = compute_epoch(other_ref)
    assert changed.rows[device].score == base.rows[device].score  # same score, other evidence:
    assert changed.state_root != base.state_root  # the evidence digest tells them apart
    assert changed.score_root != base.score_root  # (bound through the meta leaf)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Evidence(b"short", Kind.SEQ_GAP, ref(0)), "32-byte id"),
        (lambda: Evidence(subject(0), 99, ref(0)), "unknown evidence kind"),  # type: ignore[arg-type]
        (lambda: Evidence(subject(0), Kind.SEQ_GAP, ref(0), 0), "1 to 2"),
        (lambda: Evidence(subject(0), Kind.SEQ_GAP, "x" * 32), "32-byte id"),  # type: ignore[arg-type]
        (lambda: Attestation(subject(0), subject(1), b""), "32-byte id"),
        (lambda: Stake(subject(0), -1, 0), "stake is 0"),
        (lambda: Stake(subject(0), 1, -1), "age"),
        (lambda: Params(teleport_num=0), "teleport"),
        (lambda: Params(forget_num=11), "forgetting"),
        (lambda: Params(edge_cap=10**6), "at most"),
        (lambda: Params(steps=0), "steps must be positive"),
        (lambda: Params(weights={Kind.SEQ_GAP: 1}), "every evidence kind"),
    ],
)
def test_malformed_input_is_refused_by_name(make: object, message: str) -> None:
    with pytest.raises(InvalidEvidence, match=message):
        make()  # type: ignore[operator]


def test_witnesses_count_as_much_as_they_are_trusted() -> None:
    nodes, device = [subject(i) for i in range(3)], subject(10)
    swarm = [subject(100 + i) for i in range(40)]  # unstaked identities
    stakes = [Stake(n, 10**18, 30) for n in nodes] + [Stake(device, 10**17, 30)]
    vouch = [Attestation(n, device, ref(i)) for i, n in enumerate(nodes)]
    vouch += [Attestation(device, n, ref(20 + i)) for i, n in enumerate(nodes)]
    readings = [Evidence(device, Kind.READINGS_LOGGED, ref(50), 100)]
    plain = compute_epoch(EpochInputs(1, readings, vouch, stakes))
    slander = [Attestation(s, device, ref(200 + k), agrees=False) for s in swarm for k in range(5)]
    slandered = compute_epoch(EpochInputs(1, readings, vouch + slander, stakes))
    assert slandered.rows[device].state == plain.rows[device].state  # the swarm weighs nothing
    assert slandered.rows[device].score == plain.rows[device].score
    # the same words from the staked nodes that vouch for it do count
    disputes = [Attestation(n, device, ref(300 + i), agrees=False) for i, n in enumerate(nodes)]
    disputed = compute_epoch(EpochInputs(1, readings, vouch + disputes, stakes))
    assert disputed.rows[device].state.beta > 0 == plain.rows[device].state.beta
    assert disputed.rows[device].score < plain.rows[device].score


def test_witness_evidence_only_comes_from_attestations() -> None:
    for kind in (Kind.WITNESSED, Kind.WITNESS_DISAGREES, Kind.CONTRADICTED):
        with pytest.raises(InvalidEvidence, match="comes from attestations"):
            compute_epoch(EpochInputs(1, [Evidence(subject(0), kind, ref(0))]))


def test_a_verdict_the_other_witnesses_overrule_counts_against_its_witness() -> None:
    device, dissenter = subject(0), subject(1)
    witnesses = [subject(10 + i) for i in range(6)]
    stakes = [Stake(w, 10**18, 30) for w in [*witnesses, dissenter, device]]
    vouch = [Attestation(w, device, ref(i)) for i, w in enumerate(witnesses)]
    vouch += [Attestation(device, w, ref(50 + i)) for i, w in enumerate(witnesses)]
    vouch += [  # an honest mesh: each vouches for the next, one of them for the dissenter
        Attestation(w, witnesses[(i + 1) % 6], ref(60 + i)) for i, w in enumerate(witnesses)
    ]
    vouch += [
        Attestation(witnesses[0], dissenter, ref(80)),
        Attestation(dissenter, device, ref(81)),
    ]
    lie = [Attestation(dissenter, witnesses[3], ref(99), agrees=False)]
    table = compute_epoch(EpochInputs(1, [], vouch + lie, stakes))
    assert table.rows[witnesses[3]].state.beta == 0  # overruled: it does not count
    assert table.rows[dissenter].counts[Kind.CONTRADICTED] == 1
    assert table.rows[dissenter].state.beta == 30 * UNIT  # CONTRADICTED's weight, whole


def test_a_witness_with_a_bad_record_is_heard_less() -> None:
    device, witness = subject(0), subject(1)
    stakes = [Stake(device, 10**18, 30), Stake(witness, 10**18, 30)]
    says = [Attestation(witness, device, ref(0), agrees=False)]
    clean = compute_epoch(EpochInputs(2, [], says, stakes))
    tarnished = compute_epoch(
        EpochInputs(2, [], says, stakes, previous={witness: BetaState(0, 10 * UNIT)})
    )
    assert 0 < tarnished.rows[device].state.beta < clean.rows[device].state.beta
