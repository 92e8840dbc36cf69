"""The reference engine: an epoch scored in plain Python that reads like the model
(:mod:`~trustmesh.reputation.table` describes it). The vectorised engine
(:mod:`~trustmesh.reputation.vector`) must give the same integers; this one is
what it is checked against, and what a reader checks the model against.
"""

from __future__ import annotations

from trustmesh.reputation.beta import BetaState, evidence_totals, witness_units
from trustmesh.reputation.columns import EpochInputs, subjects_of
from trustmesh.reputation.evidence import Evidence, tally_verdicts
from trustmesh.reputation.params import ONE, TRUST_MASS, Params
from trustmesh.reputation.row import SubjectScore, evidence_digest
from trustmesh.reputation.trust import WitnessGraph, iterate_reference, pretrust

__all__ = ["score_reference"]


def score_reference(inputs: EpochInputs, params: Params) -> list[SubjectScore]:
    """The epoch's rows, in id order, without the trees."""
    subjects = subjects_of(inputs)
    by_subject: dict[bytes, list[Evidence]] = {subject: [] for subject in subjects}
    for item in inputs.evidence:
        by_subject[item.subject].append(item)
    pre = pretrust(subjects, inputs.stakes, params)
    verdicts = tally_verdicts(subjects, inputs.attestations, params.edge_cap)
    graph = WitnessGraph.build(verdicts, pre, params)
    steps = iterate_reference(pre, graph, params)
    tau = max(1, TRUST_MASS // max(1, sum(1 for p in pre if p > 0)))
    scaled = max(1, tau * params.trust_scale_num // params.trust_scale_den)
    factor = [min(ONE, ONE * t // scaled) for t in steps[-1]]
    # A witness's word weighs its trust, linearly up to an average share: split
    # among many identities, the same stake says no more.
    heard = max(1, tau * params.witness_scale_num // params.witness_scale_den)
    # ... and its standing so far (last epoch's beta reputation): a witness the others
    # keep overruling loses its voice as it loses its reputation
    fresh = BetaState(0, 0)
    weight = [
        min(ONE, ONE * t // heard) * inputs.previous.get(s, fresh).score(params) // ONE
        for s, t in zip(subjects, steps[-1], strict=True)
    ]
    witnessed, disputed, contradicted = witness_units(verdicts, weight, params)
    rows: dict[bytes, SubjectScore] = {}
    staked_before = 0
    for j, subject in enumerate(subjects):
        items = tuple(sorted(by_subject[subject]))
        good, bad, counts = evidence_totals(
            items, params, witnessed[j], disputed[j], contradicted[j]
        )
        state = inputs.previous.get(subject, BetaState(0, 0)).update(
            good=good, bad=bad, params=params
        )
        beta_score = state.score(params)
        trust = steps[-1][j]
        rows[subject] = SubjectScore(
            subject=subject,
            position=j,
            staked_before=staked_before,
            next=subjects[j + 1] if j + 1 < len(subjects) else bytes(32),
            score=beta_score * factor[j] // ONE,
            beta_score=beta_score,
            trust=trust,
            state=state,
            counts=counts,
            evidence=items,
            evidence_digest=evidence_digest(items),
            pretrust=pre[j],
            trajectory=tuple(step[j] for step in steps),
            attesters=tuple(subjects[i] for i in graph.sources[j]),
            weights=tuple(graph.weights[j]),
            out_weight=graph.out_weight[j],
        )
        staked_before += pre[j] > 0
    return [rows[subject] for subject in subjects]
