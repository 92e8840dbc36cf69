"""Hypothesis strategies: small random populations with evidence, witnesses and stake."""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

from trustmesh.reputation import Attestation, BetaState, EpochInputs, Evidence, Kind, Stake
from trustmesh.reputation.columns import WITNESS_KINDS

# (witness evidence comes from attestations, never as evidence items)
EVIDENCE_KINDS = [k for k in Kind if k not in WITNESS_KINDS]


def subject(n: int) -> bytes:
    return hashlib.sha256(b"subject %d" % n).digest()


def ref(n: int) -> bytes:
    return hashlib.sha256(b"ref %d" % n).digest()


@st.composite
def epoch_inputs(draw: st.DrawFn, max_subjects: int = 24) -> EpochInputs:
    n = draw(st.integers(min_value=1, max_value=max_subjects))
    ids = st.integers(min_value=0, max_value=n - 1)
    evidence = draw(
        st.lists(
            st.builds(
                Evidence,
                ids.map(subject),
                st.sampled_from(EVIDENCE_KINDS),
                st.integers(0, 50).map(ref),
                st.integers(1, 500),
            ),
            max_size=3 * n,
        )
    )
    attestations = draw(
        st.lists(
            st.builds(
                Attestation,
                ids.map(subject),
                ids.map(subject),
                st.integers(0, 40).map(ref),
                st.booleans(),
            ),
            max_size=8 * n,
        )
    )
    stakes = draw(
        st.lists(
            st.builds(
                Stake,
                ids.map(subject),
                st.integers(0, 10**21),
                st.integers(0, 60),
                st.booleans(),
            ),
            max_size=n,
            unique_by=lambda stake: stake.subject,
        )
    )
    # last epoch's states: ordinary ones, and now and then one beyond int64's reach
    state = st.builds(
        BetaState,
        st.one_of(st.integers(0, 10**8), st.integers(0, 2**80)),
        st.one_of(st.integers(0, 10**8), st.integers(0, 2**80)),
    )
    previous = draw(st.dictionaries(ids.map(subject), state, max_size=n))
    return EpochInputs(epoch=draw(st.integers(0, 1000)), evidence=evidence,
                       attestations=attestations, stakes=stakes, previous=previous)  # fmt: skip
