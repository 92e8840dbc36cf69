"""An epoch's inputs as columns: what the vectorised engine scores.

:class:`EpochInputs` holds one Python object per
evidence item, attestation and stake, which reads well and costs about a
microsecond an object; a million subjects with sixteen million attestations
are better held as arrays of indices into the sorted subject ids. Either form
describes the same epoch: :func:`columns_of` turns the first into the second,
and the engine's tests check that both give the reference engine's table.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from trustmesh.errors import InvalidEvidence
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.evidence import ID_SIZE, Attestation, Evidence, Kind, Stake

__all__ = [
    "WITNESS_KINDS", "EpochColumns", "EpochInputs", "columns_of", "exact", "subjects_of",
]  # fmt: skip

WITNESS_KINDS = frozenset({Kind.WITNESSED, Kind.WITNESS_DISAGREES, Kind.CONTRADICTED})
INT64_MAX = (1 << 63) - 1

Ints = npt.NDArray[np.int64]
Exact = npt.NDArray[Any]  # int64 where every value fits, Python ints (object) otherwise


@dataclass(frozen=True)
class EpochInputs:
    """Everything an epoch's table is a function of (all of it public)."""

    epoch: int
    evidence: Sequence[Evidence] = ()
    attestations: Sequence[Attestation] = ()
    stakes: Sequence[Stake] = ()
    previous: Mapping[bytes, BetaState] = field(default_factory=dict)  # last epoch's


def exact(values: Sequence[int] | npt.NDArray[Any], bound: int = INT64_MAX) -> Exact:
    """``values`` as an int64 array if each lies in [0, bound], else as an array of
    Python ints (slower, never wrong): arithmetic on either gives the same integers."""
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype == np.int64 and int(array.max()) <= bound and int(array.min()) >= 0:
        return array
    if array.dtype != object:
        array = array.astype(object)
    if min(array) >= 0 and max(array) <= bound:
        return array.astype(np.int64)
    return array


@dataclass(frozen=True)
class EpochColumns:
    """One epoch's inputs, by index into ``subjects`` (sorted, unique 32-byte ids).

    Attestations: ``witness``/``attested`` index the subjects, ``reading`` numbers
    the witness reading (two attestations with one number are the same reading),
    ``agrees`` the verdict. Evidence items: ``ev_subject``, ``ev_kind``, ``ev_ref``
    (one 32-byte row each), ``ev_count``. Stakes, per subject: ``stake`` (wei; zero
    for none, or slashed) and ``stake_age``. Last epoch's beta states, per subject:
    ``alpha``, ``beta`` (zero for a subject new this epoch)."""

    epoch: int
    subjects: Sequence[bytes]
    witness: Ints
    attested: Ints
    reading: Ints
    agrees: npt.NDArray[np.bool_]
    ev_subject: Ints
    ev_kind: Ints
    ev_ref: npt.NDArray[np.uint8]
    ev_count: Ints
    stake: Exact
    stake_age: Ints
    alpha: Exact
    beta: Exact

    def __post_init__(self) -> None:
        n = len(self.subjects)
        if any(type(s) is not bytes or len(s) != ID_SIZE for s in self.subjects):
            raise InvalidEvidence("subject ids are 32 bytes")
        if any(a >= b for a, b in itertools.pairwise(self.subjects)):
            raise InvalidEvidence("subject ids must be sorted and unique")
        m, k = len(self.witness), len(self.ev_subject)
        if not len(self.attested) == len(self.reading) == len(self.agrees) == m:
            raise InvalidEvidence("the attestation columns differ in length")
        if not len(self.ev_kind) == len(self.ev_count) == k or self.ev_ref.shape != (k, ID_SIZE):
            raise InvalidEvidence("the evidence columns differ in length")
        per_subject = (self.stake, self.stake_age, self.alpha, self.beta)
        if any(len(column) != n for column in per_subject):
            raise InvalidEvidence("the per-subject columns need one value a subject")
        if n and min(min(column) for column in per_subject) < 0:
            raise InvalidEvidence("a stake, a stake's age or a beta state is negative")
        for name, column in (
            ("a witness", self.witness),
            ("an attested subject", self.attested),
            ("an evidence item's subject", self.ev_subject),
        ):
            if len(column) and (column.min() < 0 or column.max() >= n):
                raise InvalidEvidence(f"{name} is not in the table's subjects")
        if m and self.reading.min() < 0:
            raise InvalidEvidence("a witness reading's number is negative")
        if k:
            _check_evidence(self.ev_kind, self.ev_count)


def _check_evidence(kinds: Ints, counts: Ints) -> None:
    known = np.isin(kinds, [int(kind) for kind in Kind if kind not in WITNESS_KINDS])
    if not known.all():
        bad = int(kinds[np.flatnonzero(~known)[0]])
        if bad in {int(kind) for kind in WITNESS_KINDS}:
            raise InvalidEvidence(f"{Kind(bad).name} evidence comes from attestations")
        raise InvalidEvidence(f"unknown evidence kind {bad}")
    if counts.min() <= 0 or counts.max() >= 1 << 32:
        raise InvalidEvidence("an evidence item counts 1 to 2^32 - 1 events")


def subjects_of(inputs: EpochInputs) -> list[bytes]:
    """The epoch's subjects, in id order: everyone any item names (witness evidence
    refused: it comes from attestations)."""
    for item in inputs.evidence:
        if item.kind in WITNESS_KINDS:
            raise InvalidEvidence(f"{item.kind.name} evidence comes from attestations")
    return sorted(
        {item.subject for item in inputs.evidence}
        | {a.witness for a in inputs.attestations}
        | {a.subject for a in inputs.attestations}
        | {stake.subject for stake in inputs.stakes}
        | set(inputs.previous)
    )


def columns_of(inputs: EpochInputs) -> EpochColumns:
    """:class:`EpochInputs` as columns (the subjects:
    everyone any item names; a subject's stake: its last unslashed one)."""
    subjects = subjects_of(inputs)
    index = {subject: i for i, subject in enumerate(subjects)}
    readings: dict[bytes, int] = {}
    attestations = inputs.attestations
    stake = [0] * len(subjects)
    age = [0] * len(subjects)
    for staked in inputs.stakes:
        if not staked.slashed:
            stake[index[staked.subject]], age[index[staked.subject]] = staked.amount, staked.age
    fresh = (0, 0)
    states = [
        (s.alpha, s.beta) if (s := inputs.previous.get(subject)) is not None else fresh
        for subject in subjects
    ]
    evidence = inputs.evidence
    return EpochColumns(
        epoch=inputs.epoch,
        subjects=subjects,
        witness=_ints(index[a.witness] for a in attestations),
        attested=_ints(index[a.subject] for a in attestations),
        reading=_ints(readings.setdefault(a.ref, len(readings)) for a in attestations),
        agrees=np.fromiter((a.agrees for a in attestations), dtype=np.bool_),
        ev_subject=_ints(index[item.subject] for item in evidence),
        ev_kind=_ints(int(item.kind) for item in evidence),
        ev_ref=np.frombuffer(b"".join(item.ref for item in evidence), dtype=np.uint8).reshape(
            len(evidence), ID_SIZE
        ),
        ev_count=_ints(item.count for item in evidence),
        stake=exact(stake),
        stake_age=_ints(age),
        alpha=exact([a for a, _ in states]),
        beta=exact([b for _, b in states]),
    )


def _ints(values: Any) -> Ints:
    return np.fromiter(values, dtype=np.int64)
