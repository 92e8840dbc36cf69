"""A table as its poster publishes it: every row's committed fields in JSON, from
which anyone rebuilds the table (and its roots) to check it against the chain and
make proofs from it.

A published row holds what the two trees commit (the state leaf and the score),
not the evidence items behind them (those are in the logs).
"""

from __future__ import annotations

from typing import Any

from trustmesh.errors import InvalidEvidence
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.params import Params
from trustmesh.reputation.table import ReputationTable, SubjectScore, assemble_table

__all__ = ["published", "rebuild"]


def published(table: ReputationTable) -> dict[str, Any]:
    """``table`` as JSON: its epoch, roots and rows in id order."""
    return {
        "epoch": table.epoch,
        "score_root": table.score_root.hex(),
        "state_root": table.state_root.hex(),
        "rows": [_row(row) for row in table.rows.values()],
    }


def rebuild(data: Any, params: Params) -> ReputationTable:
    """The table a :func:`published` document describes, its trees rebuilt (the roots
    it claims are not trusted: compare the rebuilt ones with the chain's)."""
    try:
        epoch = data["epoch"]
        rows = [_parse(item, params) for item in data["rows"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvidence(f"not a published reputation table: {exc!r}") from None
    if type(epoch) is not int or epoch < 0:
        raise InvalidEvidence("a published table's epoch is a non-negative integer")
    return assemble_table(epoch, params, rows)


def _row(row: SubjectScore) -> dict[str, Any]:
    return {
        "subject": row.subject.hex(),
        "position": row.position,
        "next": row.next.hex(),
        "staked_before": row.staked_before,
        "pretrust": row.pretrust,
        "out_weight": row.out_weight,
        "trust": list(row.trajectory),
        "attesters": [a.hex() for a in row.attesters],
        "weights": list(row.weights),
        "alpha": row.state.alpha,
        "beta": row.state.beta,
        "evidence": row.evidence_digest.hex(),
        "score": row.score,
    }


def _parse(item: Any, params: Params) -> SubjectScore:
    numbers = ("position", "staked_before", "pretrust", "out_weight", "alpha", "beta", "score")
    if any(type(item[name]) is not int or item[name] < 0 for name in numbers):
        raise ValueError(f"{', '.join(numbers)} are non-negative integers")
    trust = tuple(int(value) for value in item["trust"])
    weights = tuple(int(value) for value in item["weights"])
    state = BetaState(item["alpha"], item["beta"])
    return SubjectScore(
        subject=_id(item["subject"]),
        position=item["position"],
        staked_before=item["staked_before"],
        next=_id(item["next"]),
        score=item["score"],
        beta_score=state.score(params),
        trust=trust[-1] if trust else 0,
        state=state,
        counts={},
        evidence=(),
        evidence_digest=_id(item["evidence"]),
        pretrust=item["pretrust"],
        trajectory=trust,
        attesters=tuple(_id(a) for a in item["attesters"]),
        weights=weights,
        out_weight=item["out_weight"],
    )


def _id(text: Any) -> bytes:
    value = bytes.fromhex(text)
    if len(value) != 32:
        raise ValueError("ids and digests are 32 bytes")
    return value
