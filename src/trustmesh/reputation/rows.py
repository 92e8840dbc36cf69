"""A table's rows by subject id: kept as built, or made on demand from the
vectorised engine's columns (a million rows are columns until someone asks for
one: the API asks for a few, a simulation for all)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence

from trustmesh.reputation.beta import BetaState, evidence_totals
from trustmesh.reputation.evidence import Evidence, Kind
from trustmesh.reputation.params import Params
from trustmesh.reputation.row import SubjectScore, evidence_digest
from trustmesh.reputation.vector import Scored

__all__ = ["Rows", "row_maker"]


class Rows(Mapping[bytes, SubjectScore]):
    """Rows in id order: ``make(j)`` is the row of ``subjects[j]``."""

    def __init__(self, subjects: Sequence[bytes], make: Callable[[int], SubjectScore]) -> None:
        self._subjects = subjects
        self._make = make
        self._made: dict[int, SubjectScore] = {}

    @classmethod
    def of(cls, rows: Sequence[SubjectScore]) -> Rows:
        return cls([row.subject for row in rows], rows.__getitem__)

    def index(self, subject: bytes) -> int:
        """The subject's position in id order (KeyError if it has no row)."""
        j = bisect_left(self._subjects, subject)
        if j == len(self._subjects) or self._subjects[j] != subject:
            raise KeyError(subject)
        return j

    def __getitem__(self, subject: bytes) -> SubjectScore:
        return self.at(self.index(subject))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._subjects)

    def __len__(self) -> int:
        return len(self._subjects)

    def at(self, j: int) -> SubjectScore:
        """The row of the subject at position ``j``."""
        row = self._made.get(j)
        if row is None:
            row = self._made[j] = self._make(j)
        return row


def row_maker(scored: Scored, params: Params) -> Callable[[int], SubjectScore]:
    """Row ``j`` of ``scored``, built from its columns."""
    columns = scored.columns
    subjects = columns.subjects

    def make(j: int) -> SubjectScore:
        items = tuple(
            Evidence(subjects[j], Kind(int(columns.ev_kind[k])), columns.ev_ref[k].tobytes(),
                     int(columns.ev_count[k]))
            for k in scored.ev_order[scored.ev_start[j] : scored.ev_start[j + 1]].tolist()
        )  # fmt: skip
        counts = evidence_totals(
            items,
            params,
            int(scored.witnessed[j]),
            int(scored.disputed[j]),
            int(scored.contradicted[j]),
        )[2]
        edges = slice(int(scored.edge_start[j]), int(scored.edge_start[j + 1]))
        trajectory = tuple(scored.trust[:, j].tolist())
        return SubjectScore(
            subject=subjects[j],
            position=j,
            staked_before=int(scored.staked_before[j]),
            next=subjects[j + 1] if j + 1 < len(subjects) else bytes(32),
            score=int(scored.score[j]),
            beta_score=int(scored.beta_score[j]),
            trust=trajectory[-1],
            state=BetaState(int(scored.alpha[j]), int(scored.beta[j])),
            counts=counts,
            evidence=items,
            evidence_digest=evidence_digest(items),
            pretrust=int(scored.pretrust[j]),
            trajectory=trajectory,
            attesters=tuple(subjects[i] for i in scored.src[edges].tolist()),
            weights=tuple(scored.weight[edges].tolist()),
            out_weight=int(scored.out_weight[j]),
        )

    return make
