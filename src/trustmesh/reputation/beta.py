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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trustmesh.reputation.evidence import GOOD, Evidence, Kind, Verdicts
from trustmesh.reputation.params import ONE, UNIT, Params

__all__ = ["BetaState", "evidence_totals", "witness_units"]


@dataclass(frozen=True)
class BetaState:
    alpha: int  # good evidence, in UNITs, forgetting applied
    beta: int  # bad evidence, likewise

    def update(self, *, good: int, bad: int, params: Params) -> BetaState:
        """The state after one more epoch whose new evidence is ``good``/``bad``."""
        alpha = self.alpha * params.forget_num // params.forget_den + good
        return BetaState(alpha, self.beta * params.forget_bad_num // params.forget_bad_den + bad)

    def score(self, params: Params) -> int:
        """E[Beta(alpha + prior, beta + prior)], as a fraction of ONE (rounded down)."""
        return (self.alpha + params.prior) * ONE // (self.alpha + self.beta + 2 * params.prior)


def evidence_totals(
    items: Iterable[Evidence],
    params: Params,
    witnessed: int = 0,
    disputed: int = 0,
    contradicted: int = 0,
) -> tuple[int, int, dict[Kind, int]]:
    """An epoch's (good, bad) evidence in UNITs, and the event count per kind.

    ``witnessed``/``disputed``: the subject's agreeing and disagreeing witness
    verdicts in UNITs, each weighted by its witness (:func:`witness_units`);
    ``contradicted``: its own verdicts as a witness that the others overruled.
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
    good += min(witnessed, params.good_cap * UNIT) * params.weights[Kind.WITNESSED]
    bad += disputed * params.weights[Kind.WITNESS_DISAGREES]
    bad += contradicted * params.weights[Kind.CONTRADICTED]
    derived = (
        (Kind.WITNESSED, witnessed),
        (Kind.WITNESS_DISAGREES, disputed),
        (Kind.CONTRADICTED, contradicted),
    )
    for kind, units in derived:
        if units // UNIT:
            counts[kind] = units // UNIT  # (weighted events, for the explanation)
    return good, bad, counts


def witness_units(
    verdicts: Verdicts, weight: Sequence[int], params: Params
) -> tuple[list[int], list[int], list[int]]:
    """Per subject (``len(weight)`` of them), in UNITs: the agreeing and the
    disagreeing verdicts about it that stand, and its own verdicts as a witness that
    were overruled.

    A (witness, subject) verdict counts its distinct witness readings (capped:
    :func:`~trustmesh.reputation.evidence.tally_verdicts`) times the witness's
    weight (a fraction of ONE). When one side's weight about a subject is at least
    ``consensus_num / consensus_den`` times the other's, the other side's verdicts
    are overruled: they do not count for or against the subject, and each counts
    against its witness (whole, unweighted: it is the witness's own doing)."""
    n = len(weight)
    said = [[0] * n, [0] * n]  # [disagreeing, agreeing] weight about each subject
    for (i, j, agrees), count in verdicts.items():
        said[agrees][j] += count * UNIT * weight[i] // ONE
    standing = [[0] * n, [0] * n]
    overruled = [0] * n
    for (i, j, agrees), count in verdicts.items():
        other, own = said[not agrees][j], said[agrees][j]
        if other > 0 and other * params.consensus_den >= own * params.consensus_num:
            overruled[i] += count * UNIT
        else:
            standing[agrees][j] += count * UNIT * weight[i] // ONE
    return standing[True], standing[False], overruled
