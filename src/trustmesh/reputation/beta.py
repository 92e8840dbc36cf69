"""Beta reputation with forgetting (Jøsang and Ismail, 2002), in integers.

A subject's standing is a pair (alpha, beta): good and bad evidence seen so far,
each carried into the next epoch multiplied by the forgetting ratio (rounded
down), so old behaviour fades and a subject can neither bank a long good past
against a fresh lie nor be held forever to an old mistake. Its score is the
expected value of Beta(alpha + prior, beta + prior).

>>> from trustmesh.reputation.params import Params, UNIT
>>> state = BetaState(0, 0).update(good=90 * UNIT, bad=10 * UNIT, params=Params())
>>> state.score(Params()) * 100 // ONE   # (90 + 1) / (100 + 2)
89
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trustmesh.reputation.evidence import GOOD, Evidence, Kind
from trustmesh.reputation.params import ONE, UNIT, Params

__all__ = ["BetaState", "evidence_totals"]


@dataclass(frozen=True)
class BetaState:
    alpha: int  # good evidence, in UNITs, forgetting applied
    beta: int  # bad evidence, likewise

    def update(self, *, good: int, bad: int, params: Params) -> BetaState:
        """The state after one more epoch whose new evidence is ``good``/``bad``."""
        keep, of = params.forget_num, params.forget_den
        return BetaState(self.alpha * keep // of + good, self.beta * keep // of + bad)

    def score(self, params: Params) -> int:
        """E[Beta(alpha + prior, beta + prior)], as a fraction of ONE (rounded down)."""
        return (self.alpha + params.prior) * ONE // (self.alpha + self.beta + 2 * params.prior)


def evidence_totals(items: Iterable[Evidence], params: Params) -> tuple[int, int, dict[Kind, int]]:
    """An epoch's (good, bad) evidence in UNITs, and the event count per kind.

    Good evidence of each kind counts up to ``params.good_cap`` events; bad
    evidence counts in full."""
    counts: dict[Kind, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + item.count
    good = bad = 0
    for kind, count in counts.items():
        if kind in GOOD:
            good += min(count, params.good_cap) * params.weights[kind] * UNIT
        else:
            bad += count * params.weights[kind] * UNIT
    return good, bad, counts
