"""Peer witnessing: challenges and answers, signed and parsed as the log holds
them, judged into attestations and impossible-claim evidence by the rules alone;
and an epoch's inputs observed from logged readings."""

from __future__ import annotations

import random
from typing import Any

import pytest

from trustmesh.chain.suite import device_id
from trustmesh.errors import InvalidEvidence
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.merkle import leaf_hash
from trustmesh.reading import Reading, sign_reading, verify_reading
from trustmesh.reputation import Attestation, Kind, Stake, compute_epoch
from trustmesh.reputation.observe import Observer
from trustmesh.reputation.witness import (
    WitnessRules,
    challenge_fields,
    judge,
    subject_id,
    witness_fields,
)

RULES = WitnessRules(range_m=100, answer_ms=10_000, tolerance=1.0, max_speed_mps=10)
T0 = 1_800_000_000_000


class Device:
    def __init__(self) -> None:
        self.signer = SoftwareSigner.generate()
        self.did = str(did_from_key(self.signer.public_key))
        self.id = subject_id(self.did)
        self.seq = 0

    def sign(self, ts: int, sensor: str, value: Any, extra: dict[str, Any]) -> Reading:
        self.seq += 1
        entry = sign_reading(
            self.signer, seq=self.seq, ts=ts, sensor=sensor, value=value, extra=extra
        )
        return verify_reading(entry)

    def challenge(self, pos: tuple[int, int], value: float = 20.0, ts: int = T0) -> Reading:
        return self.sign(ts, "challenge", value, challenge_fields(pos))

    def answer(
        self, challenge: Reading, pos: tuple[int, int], value: float = 20.0, after: int = 1_000
    ) -> Reading:
        extra = witness_fields(challenge.entry, challenge.did, pos)
        return self.sign(challenge.ts + after, "witness", value, extra)


def _impossible(result: Any) -> set[bytes]:
    return {e.subject for e in result.evidence if e.kind == Kind.IMPOSSIBLE_CLAIM}


def test_subject_ids_are_the_registry_ids() -> None:
    device = Device()
    assert device.id == device_id(device.did)


def test_an_answer_in_range_becomes_an_attestation_that_agrees_or_not() -> None:
    a, b, c = Device(), Device(), Device()
    challenge = a.challenge((0, 0), value=20.0)
    near = b.answer(challenge, (30, 40), value=20.5)
    off = c.answer(challenge, (60, 0), value=25.0)
    result = judge([challenge, near, off], RULES, staked=[a.id])
    assert sorted(result.attestations) == sorted(
        [
            Attestation(b.id, a.id, leaf_hash(near.entry), True),
            Attestation(c.id, a.id, leaf_hash(off.entry), False),
        ]
    )
    assert result.evidence == [] and result.refused == []


@pytest.mark.parametrize(
    ("where", "blamed"),
    [((101, 0), "witness"), ((0, 0), "both")],
    ids=["beyond range", "one device under two names"],
)
def test_impossible_places_count_against_the_claimants(where: tuple[int, int], blamed: str) -> None:
    a, b = Device(), Device()
    challenge = a.challenge((0, 0))
    answer = b.answer(challenge, where)
    result = judge([challenge, answer], RULES, staked=[a.id, b.id])
    assert result.attestations == []
    assert _impossible(result) == ({b.id} if blamed == "witness" else {a.id, b.id})
    assert {e.ref for e in result.evidence} == {leaf_hash(answer.entry)}


def test_a_device_witnessing_itself_counts_against_it() -> None:
    a = Device()
    challenge = a.challenge((0, 0))
    result = judge([challenge, a.answer(challenge, (5, 0))], RULES, staked=[a.id])
    assert result.attestations == [] and _impossible(result) == {a.id}


def test_one_identity_in_two_places_at_once() -> None:
    a, b, c = Device(), Device(), Device()
    first = a.challenge((0, 0), ts=T0)
    second = a.challenge((0, 500), ts=T0 + 10_000)  # 500 m in 10 s, at most 10 m/s
    slow = b.challenge((0, 0), ts=T0)
    slower = b.challenge((0, 90), ts=T0 + 10_000)  # 90 m in 10 s: possible
    result = judge([first, second, slow, slower, c.answer(first, (10, 0))], RULES, [a.id])
    assert _impossible(result) == {a.id}
    assert [e.ref for e in result.evidence] == [leaf_hash(second.entry)]


def test_a_closed_unstaked_cluster_counts_against_each_member() -> None:
    swarm = [Device() for _ in range(3)]
    readings = []
    for i, member in enumerate(swarm):
        challenge = member.challenge((10 * i, 0))
        readings.append(challenge)
        readings.append(swarm[i - 1].answer(challenge, (10 * ((i - 1) % 3), 0)))
    assert _impossible(judge(readings, RULES, staked=[])) == {m.id for m in swarm}
    # one staked member, or a group below the minimum, is not a closed cluster
    assert _impossible(judge(readings, RULES, staked=[swarm[0].id])) == set()
    small = WitnessRules(range_m=100, answer_ms=10_000, cluster_min=4)
    assert _impossible(judge(readings, small, staked=[])) == set()


def test_malformed_late_and_unknown_answers_are_refused_for_everyone() -> None:
    a, b = Device(), Device()
    challenge = a.challenge((0, 0))
    other = a.challenge((0, 0), ts=T0 + 20_000_000)
    late = b.answer(challenge, (10, 0), after=RULES.answer_ms + 1)
    early = b.answer(challenge, (10, 0), after=-1)
    unknown = b.answer(other, (10, 0))
    wrong_of = b.sign(T0 + 5, "witness", 20.0, {**witness_fields(challenge.entry, b.did, (1, 1))})
    no_pos = b.sign(T0 + 5, "witness", 20.0, {"challenge": leaf_hash(challenge.entry), "of": a.did})
    text_value = a.sign(T0, "challenge", "hot", challenge_fields((0, 0)))
    result = judge([challenge, late, early, unknown, wrong_of, no_pos, text_value], RULES, [a.id])
    assert result.attestations == [] and result.evidence == []
    reasons = dict(result.refused)
    assert set(reasons) == {
        leaf_hash(r.entry) for r in (late, early, unknown, wrong_of, no_pos, text_value)
    }
    assert "not within" in reasons[leaf_hash(late.entry)]
    assert "not logged" in reasons[leaf_hash(unknown.entry)]
    assert "other than" in reasons[leaf_hash(wrong_of.entry)]
    assert "needs" in reasons[leaf_hash(no_pos.entry)]


def test_the_judgement_is_independent_of_order_and_duplicates() -> None:
    devices = [Device() for _ in range(6)]
    readings = []
    for i, challenger in enumerate(devices):
        challenge = challenger.challenge((25 * i, 0), value=20.0 + i % 2 * 3)
        readings.append(challenge)
        readings += [
            w.answer(challenge, (25 * j, 0)) for j, w in enumerate(devices) if w is not challenger
        ]
    first = judge(readings, RULES, [devices[0].id])
    shuffled = readings * 2
    random.Random(7).shuffle(shuffled)
    again = judge(shuffled, RULES, [devices[0].id])
    assert (sorted(first.attestations), first.evidence) == (
        sorted(again.attestations),
        again.evidence,
    )
    assert first.attestations and first.evidence  # 100 m apart and beyond: both kinds occur


def test_the_observer_counts_readings_gaps_and_clock_steps_per_epoch() -> None:
    device = Device()
    observer = Observer(epoch_ms=60_000)
    seqs_ts = [(1, 1_000), (2, 2_000), (5, 3_000), (6, 2_500), (7, 61_000)]
    readings = [
        verify_reading(sign_reading(device.signer, seq=s, ts=t, sensor="t", value=1))
        for s, t in seqs_ts
    ]
    for reading in [*readings, readings[0]]:  # a reading seen twice counts once
        observer.add(reading)
    assert observer.epochs() == [0, 1]
    kinds = sorted((e.kind, e.count, e.ref) for e in observer.inputs(0).evidence)
    assert [(k, n) for k, n, _ in kinds] == [
        (Kind.READINGS_LOGGED, 4),
        (Kind.SEQ_GAP, 1),
        (Kind.CLOCK_DRIFT, 1),
    ]
    assert kinds[1][2] == leaf_hash(readings[2].entry)  # the reading after the gap
    assert kinds[2][2] == leaf_hash(readings[3].entry)  # the one whose clock went back
    assert [e.count for e in observer.inputs(1).evidence] == [1]
    observer.forget(0)
    assert observer.epochs() == [1]
    with pytest.raises(InvalidEvidence):
        Observer(epoch_ms=0)


def test_observed_witnessing_scores_a_liar_below_its_honest_neighbours() -> None:
    node, devices = Device(), [Device() for _ in range(5)]
    liar = devices[0]
    observer = Observer(epoch_ms=3_600_000, rules=RULES)
    everyone = [node, *devices]
    for i, challenger in enumerate(everyone):
        value = 30.0 if challenger is liar else 20.0
        challenge = challenger.challenge((10 * i, 0), value=value)
        observer.add(challenge)
        for j, witness in enumerate(everyone):
            if witness is not challenger:
                observer.add(witness.answer(challenge, (10 * j, 0), value=20.0))
    stakes = [Stake(node.id, 10**18, 30), *(Stake(d.id, 10**17, 30) for d in devices)]
    inputs = observer.inputs(T0 // 3_600_000, stakes)
    assert inputs.attestations
    assert all(e.kind != Kind.IMPOSSIBLE_CLAIM for e in inputs.evidence)
    table = compute_epoch(inputs)
    honest = [table.rows[d.id].score for d in devices[1:]]
    assert table.rows[liar.id].score < min(honest)


def test_of_a_seq_seen_twice_the_first_reading_counts() -> None:
    """A device that signs two readings with one seq (equivocation, which the
    Disputes contract proves) gets only the first one seen counted, witnessing
    included: an answer seen after an ordinary reading of its seq is not counted,
    and is counted when seen first."""
    challenger, witness = Device(), Device()
    challenge = challenger.challenge((0, 0))
    answer = witness.answer(challenge, (10, 0))
    witness.seq -= 1  # the same seq again, for an ordinary reading
    ordinary = witness.sign(answer.ts, "t", 20.0, {})
    epoch = T0 // 3_600_000
    counted = []
    for order in ([ordinary, answer], [answer, ordinary]):
        observer = Observer(epoch_ms=3_600_000, rules=RULES)
        for reading in [challenge, *order]:
            observer.add(reading)
        inputs = observer.inputs(epoch)
        logged = [e for e in inputs.evidence if e.kind == Kind.READINGS_LOGGED]
        assert sorted(e.count for e in logged) == [1, 1]
        counted.append(len(inputs.attestations))
    assert counted == [0, 1]


def test_readings_added_as_a_batch_are_observed_as_added_one_by_one() -> None:
    """A node hands the observer a batch at once (records grouped by device and
    epoch): the same inputs, witnessing included, as one reading at a time."""
    devices = [Device() for _ in range(4)]
    readings: list[Reading] = []
    for i, challenger in enumerate(devices):
        challenge = challenger.challenge((10 * i, 0), value=30.0 if i == 0 else 20.0)
        readings.append(challenge)
        for j, witness in enumerate(devices):
            if witness is not challenger:
                readings.append(witness.answer(challenge, (10 * j, 0)))
                readings.append(witness.sign(T0 + 3_600_000 * (j % 2), "t", 1.0, {}))
    one_by_one = Observer(epoch_ms=3_600_000, rules=RULES)
    for reading in readings:
        one_by_one.add(reading)
    batched = Observer(epoch_ms=3_600_000, rules=RULES)
    batched.add_many(readings, [leaf_hash(r.entry) if r.seq % 2 else None for r in readings])
    assert batched.epochs() == one_by_one.epochs() == [T0 // 3_600_000, T0 // 3_600_000 + 1]
    stakes = [Stake(d.id, 10**17, 30) for d in devices]
    for epoch in batched.epochs():
        ours, theirs = batched.inputs(epoch, stakes), one_by_one.inputs(epoch, stakes)
        assert sorted(ours.attestations) == sorted(theirs.attestations)
        assert sorted(ours.evidence) == sorted(theirs.evidence)
        assert compute_epoch(ours).score_root == compute_epoch(theirs).score_root
    assert batched.inputs(T0 // 3_600_000, stakes).attestations  # witnessing was seen
