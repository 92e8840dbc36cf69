"""One subject's row of an epoch's table: its score, everything it was computed
from, and its two leaves (see :mod:`~trustmesh.reputation.table` for the trees)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trustmesh.reputation._abi import encode as encode_words
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.evidence import Evidence, Kind
from trustmesh.reputation.merkle import keccak256, leaf_hash

__all__ = ["SubjectScore", "evidence_digest"]


@dataclass(frozen=True)
class SubjectScore:
    """One subject's row: its score and everything it was computed from."""

    subject: bytes
    position: int  # in id order
    staked_before: int  # subjects with pre-trust before it, in id order
    next: bytes  # the id after it, or 32 zero bytes for the last
    score: int
    beta_score: int
    trust: int  # after the last step
    state: BetaState
    counts: Mapping[Kind, int]  # this epoch's events per kind
    evidence: tuple[Evidence, ...]  # this epoch's items, sorted
    evidence_digest: bytes
    pretrust: int
    trajectory: tuple[int, ...]  # trust at steps 0..steps
    attesters: tuple[bytes, ...]  # the kept in-edges, by id
    weights: tuple[int, ...]
    out_weight: int

    def score_leaf(self, epoch: int) -> bytes:
        return leaf_hash(encode_words([self.subject, epoch, self.score]))

    def state_leaf(self, epoch: int) -> bytes:
        return leaf_hash(encode_words(self.state_values(epoch)))

    def state_values(self, epoch: int) -> list[Any]:
        """The state leaf's fields, in order (a contract takes them as a struct)."""
        return [
            self.subject, epoch, self.position, self.next, self.staked_before, self.pretrust,
            self.out_weight,
            list(self.trajectory), self.edges_digest, self.state.alpha, self.state.beta,
            self.evidence_digest,
        ]  # fmt: skip

    @property
    def edges_digest(self) -> bytes:
        """The kept in-edges, hashed: ``keccak256(abi.encode(attesters, weights))``."""
        return keccak256(encode_words([list(self.attesters), list(self.weights)]))

    def explain(self) -> dict[str, Any]:
        """The score's components and the evidence behind them, JSON-ready."""
        return {
            "subject": self.subject.hex(),
            "score": self.score,
            "components": {
                "beta": self.beta_score,
                "alpha": self.state.alpha,
                "beta_evidence": self.state.beta,
                "trust": self.trust,
                "pretrust": self.pretrust,
            },
            "counts": {kind.name.lower(): count for kind, count in sorted(self.counts.items())},
            "evidence": [
                {"kind": item.kind.name.lower(), "count": item.count, "ref": item.ref.hex()}
                for item in self.evidence
            ],
            "evidence_digest": self.evidence_digest.hex(),
            "attesters": [
                {"id": attester.hex(), "weight": weight}
                for attester, weight in zip(self.attesters, self.weights, strict=True)
            ],
        }


def evidence_digest(items: Sequence[Evidence]) -> bytes:
    """The epoch's evidence about one subject, hashed (items sorted by kind and ref)."""
    ordered = sorted(items, key=lambda item: (item.kind, item.ref, item.count))
    return keccak256(
        encode_words(
            [[int(i.kind) for i in ordered], [i.count for i in ordered], [i.ref for i in ordered]]
        )
    )
