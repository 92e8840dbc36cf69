"""Sharing a reward pool by reputation: proportional, never more than the pool,
recomputable to the same root, and poorer the more a stake is split into a
clique of identities vouching for each other."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reputation.strategies import ref, subject
from trustmesh.market.rewards import distribute, weights
from trustmesh.reputation import Attestation, EpochInputs, Evidence, Kind, Stake, compute_epoch
from trustmesh.reputation.merkle import root_from_proof

ACCOUNT = "0x" + "ab" * 20


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(0, 50), st.integers(0, 10**24), min_size=1, max_size=20),
    st.integers(1, 10**30),
)
def test_shares_are_proportional_and_never_exceed_the_pool(
    drawn: dict[int, int], pool: int
) -> None:
    weight = {subject(k): w for k, w in drawn.items()}
    recipients = dict.fromkeys(weight, ACCOUNT)
    shares = distribute(3, pool, weight, recipients)
    total = sum(w for w in weight.values())
    assert shares.total <= pool
    for share in shares.shares:
        assert share.amount == pool * weight[share.subject] // total
        assert root_from_proof(share.leaf(3), shares.proof(share.index)) == shares.root
    assert [s.subject for s in shares.shares] == sorted(s for s, w in weight.items() if w > 0)
    assert distribute(3, pool, weight, recipients).root == shares.root  # recomputable


def test_only_subjects_with_a_recipient_share_and_bad_pools_are_refused() -> None:
    weight = {subject(1): 1, subject(2): 3}
    shares = distribute(1, 100, weight, {subject(2): ACCOUNT})
    assert [(s.subject, s.amount) for s in shares.shares] == [(subject(2), 100)]
    with pytest.raises(ValueError, match="positive"):
        distribute(1, 0, weight, {})
    with pytest.raises(ValueError, match="negative"):
        distribute(1, 10, {subject(1): -1}, {subject(1): ACCOUNT})


def test_a_stake_split_into_a_vouching_clique_earns_less_the_more_it_is_split() -> None:
    """A stake S held by k identities (S/k each) that log readings and witness one
    another all round, beside an honest device: the clique's weight falls as k grows
    (its trust is shared, each member damped by its k - 1 vouchers)."""
    stake = 10**18

    def split(k: int) -> tuple[int, int]:
        honest, members = subject(0), [subject(10 + i) for i in range(k)]
        evidence = [
            Evidence(s, Kind.READINGS_LOGGED, ref(i), 100) for i, s in enumerate([honest, *members])
        ]
        vouching = [
            Attestation(a, b, ref(1_000 + 50 * i + j))
            for i, a in enumerate(members)
            for j, b in enumerate(members)
            if a != b
        ]
        stakes = [Stake(honest, stake, 30)] + [Stake(m, stake // k, 30) for m in members]
        weight = weights(compute_epoch(EpochInputs(5, evidence, vouching, stakes)))
        return weight[honest], sum(weight[m] for m in members)

    (honest_2, pair), (honest_3, clique_of_3), (honest_9, clique_of_9) = map(split, (2, 3, 9))
    assert pair > clique_of_3 > clique_of_9 > 0
    # and the honest device's part of the two grows as the clique splits
    assert honest_2 / pair < honest_3 / clique_of_3 < honest_9 / clique_of_9
