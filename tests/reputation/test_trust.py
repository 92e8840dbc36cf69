"""Stake-anchored EigenTrust: the numpy path gives the reference's integers, and
trust reaches only what stake vouches for."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reputation.strategies import epoch_inputs, ref, subject
from trustmesh.reputation import TRUST_MASS, Attestation, EpochInputs, Params, Stake
from trustmesh.reputation.evidence import tally_verdicts
from trustmesh.reputation.trust import (
    WitnessGraph,
    iterate_numpy,
    iterate_reference,
    pretrust,
    step_value,
)


def _graph(inputs: EpochInputs, params: Params) -> tuple[list[bytes], list[int], WitnessGraph]:
    subjects = sorted(
        {a.witness for a in inputs.attestations}
        | {a.subject for a in inputs.attestations}
        | {s.subject for s in inputs.stakes}
    )
    pre = pretrust(subjects, inputs.stakes, params)
    verdicts = tally_verdicts(subjects, inputs.attestations, params.edge_cap)
    return subjects, pre, WitnessGraph.build(verdicts, pre, params)


@settings(max_examples=200, deadline=None)
@given(epoch_inputs(), st.integers(1, 4), st.integers(1, 5))
def test_numpy_gives_the_references_integers(inputs: EpochInputs, cap: int, edge_cap: int) -> None:
    params = Params(in_degree_cap=cap, edge_cap=edge_cap, steps=6)
    _, pre, graph = _graph(inputs, params)
    reference = iterate_reference(pre, graph, params)
    assert iterate_numpy(pre, graph, params) == reference
    for before, after in itertools.pairwise(reference):
        assert sum(after) <= TRUST_MASS and min(after, default=0) >= 0
        for j in range(len(pre)):  # each value follows from its attesters' one step earlier
            expected = step_value(
                pre[j], graph.sources[j], graph.weights[j], before, graph.out_weight, params
            )
            assert after[j] == expected


def test_pretrust_follows_aged_unslashed_stake() -> None:
    a, b, c, d = (subject(i) for i in range(4))
    params = Params(stake_age_full=10)
    stakes = [Stake(a, 100, age=9), Stake(b, 100, age=4), Stake(c, 10**6, 50, slashed=True)]
    assert pretrust([a, b, c, d], stakes, params) == [
        TRUST_MASS * 100 // 150, TRUST_MASS * 50 // 150, 0, 0,
    ]  # fmt: skip
    assert pretrust([d], stakes, params) == [0]  # nobody staked in the table


def test_an_unstaked_swarm_gains_nothing() -> None:
    honest = [subject(i) for i in range(5)]
    swarm = [subject(100 + i) for i in range(50)]
    attest = [Attestation(h, g, ref(0)) for h in honest for g in honest if h != g]
    attest += [Attestation(s, t, ref(k)) for s in swarm for t in swarm for k in range(3) if s != t]
    attest += [Attestation(s, h, ref(1)) for s in swarm for h in honest]  # they vouch upward too
    stakes = [Stake(h, 10**18, 30) for h in honest]
    params = Params()
    subjects, pre, graph = _graph(EpochInputs(0, attestations=attest, stakes=stakes), params)
    trust = dict(zip(subjects, iterate_numpy(pre, graph, params)[-1], strict=True))
    assert all(trust[s] == 0 for s in swarm)
    assert all(trust[h] > TRUST_MASS // 10 for h in honest)


def test_in_degree_cap_keeps_the_most_staked_attesters() -> None:
    target = subject(0)
    staked = [subject(i) for i in range(1, 4)]
    unstaked = [subject(i) for i in range(10, 40)]
    attest = [Attestation(s, target, ref(k)) for s in unstaked for k in range(5)]
    attest += [Attestation(s, target, ref(0)) for s in staked]
    attest += [Attestation(target, s, ref(1)) for s in staked + unstaked]  # mutual
    stakes = [Stake(s, 10**18 * (i + 1), 30) for i, s in enumerate(staked)]
    params = Params(in_degree_cap=4, edge_cap=3)
    subjects, _, graph = _graph(EpochInputs(0, attestations=attest, stakes=stakes), params)
    kept = {subjects[i] for i in graph.sources[subjects.index(target)]}
    assert set(staked) <= kept and len(kept) == 4
    weights = graph.weights[subjects.index(target)]
    assert max(weights) == 3  # five attestations of one pair count as edge_cap


def test_self_attestation_and_repeats_count_once() -> None:
    a, b = subject(0), subject(1)
    attest = [Attestation(a, a, ref(0)), Attestation(a, b, ref(0)), Attestation(a, b, ref(0))]
    params = Params()
    subjects, _, graph = _graph(EpochInputs(0, attestations=attest), params)
    assert graph.edge_count == 0  # one-way: witnessing is mutual, or it is no edge
    attest.append(Attestation(b, a, ref(1)))
    subjects, _, graph = _graph(EpochInputs(0, attestations=attest), params)
    assert graph.edge_count == 2 and graph.out_weight[subjects.index(a)] == 1
