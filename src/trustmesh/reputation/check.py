"""Checking a posted table: the first value in it that a one-step proof disproves.

The Reputation contract recomputes one value from the table's own leaves: a trust
value from its attesters' values one step earlier (or, at step 0, its pre-trust),
a score from its subject's beta state and final trust. :func:`first_provable`
makes the same computations over the whole table, step by step (in id order
within a step), then the scores, and names the first that fails: the value where
a lie was told, not one it threw off later. That is what a checker proves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trustmesh.reputation.params import INT64_SAFE as MAX_WEIGHT
from trustmesh.reputation.params import ONE, TRUST_MASS
from trustmesh.reputation.table import ReputationTable, SubjectScore

__all__ = ["Wrong", "first_provable"]


@dataclass(frozen=True)
class Wrong:
    """A value a one-step proof disproves: ``subject``'s trust at ``step``, or its score."""

    kind: Literal["trust", "score"]
    subject: bytes
    step: int = 0


def first_provable(table: ReputationTable) -> Wrong | None:
    """The first wrong value of ``table`` (as posted) a contract proof shows, if any."""
    params = table.params
    steps = max((len(row.trajectory) for row in table.rows.values()), default=0)
    for step in range(steps):  # step by step: a lie shows first where it was told
        for row in table.rows.values():
            if step >= len(row.trajectory):
                continue
            expected = _expected(row, step, table)
            if expected == _UNKNOWN:
                continue  # an attester the table does not hold: no proof from its leaf
            value = row.trajectory[step]
            if value > TRUST_MASS or row.pretrust > TRUST_MASS or value != expected:
                return Wrong("trust", row.subject, step)
    even = max(1, TRUST_MASS // max(1, table.meta_values[4]))  # over the staked subjects
    scaled = max(1, even * params.trust_scale_num // params.trust_scale_den)
    for row in table.rows.values():
        trust = row.trajectory[-1] if row.trajectory else 0
        if row.score != row.state.score(params) * min(ONE, ONE * trust // scaled) // ONE:
            return Wrong("score", row.subject)
    return None


_UNKNOWN = -1
_OUT_OF_RANGE = -2  # a weight or an attester's value no table may hold


def _expected(row: SubjectScore, step: int, table: ReputationTable) -> int:
    """What one step gives, or one of the two markers."""
    if step == 0:
        return row.pretrust
    inflow = 0
    for attester, weight in zip(row.attesters, row.weights, strict=True):
        source = table.rows.get(attester)
        if source is None or len(source.trajectory) < step:
            return _UNKNOWN
        value = source.trajectory[step - 1]
        if weight == 0 or weight > MAX_WEIGHT or source.out_weight < weight or value > TRUST_MASS:
            return _OUT_OF_RANGE
        inflow += value * weight // source.out_weight
    num, den = table.params.teleport_num, table.params.teleport_den
    return ((den - num) * inflow + num * row.pretrust) // den
