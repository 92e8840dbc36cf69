"""Checking a posted claim against the logs (pure: the logs' entries and the
Registry's keys are passed in).

A :class:`Snapshot` holds the entries of the logs a claim reads, up to its
sizes; :func:`read_data` decodes a claim's published data once, and :func:`judge`
rebuilds the honest claim from the snapshot and compares the two: the claim is
true, or a lie with its proof, or unverifiable (its data is missing or is not
the posted claim's: nothing can be proven from it, which is reported for people
to act on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from trustmesh.aggregate.challenge import Challenge, find_lie
from trustmesh.aggregate.claim import Claim, KeyFor, LoggedReading, build, decode, read_as_chain
from trustmesh.aggregate.query import Query
from trustmesh.errors import InvalidAggregate, InvalidReading
from trustmesh.log.merkle import inclusion_proof, leaf_hash
from trustmesh.reading import parse_reading

__all__ = ["Posted", "Snapshot", "Verdict", "judge", "read_data"]


class Posted(Protocol):
    """What the chain holds of a claim: its Posted event's fields
    (:class:`trustmesh.chain.aggregates.Posted` has them)."""

    @property
    def claim_id(self) -> bytes: ...
    @property
    def query_hash(self) -> bytes: ...
    @property
    def root(self) -> bytes: ...
    @property
    def result(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def sizes(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Verdict:
    claim_id: bytes
    status: str  # true, lie, unverifiable
    detail: str
    challenge: Challenge | None = None

    def to_json(self) -> dict[str, object]:
        document: dict[str, object] = {
            "claim_id": "0x" + self.claim_id.hex(),
            "status": self.status,
            "detail": self.detail,
        }
        if self.challenge is not None:
            document["lie"] = {"kind": self.challenge.kind, "reason": self.challenge.reason,
                               "method": self.challenge.method}  # fmt: skip
        return document


class Snapshot:
    """Entries of the logs a claim reads (origin id → the log's first entries)."""

    def __init__(self, entries: Mapping[bytes, Sequence[bytes]]) -> None:
        self.entries = entries
        self._leaves: dict[bytes, list[bytes]] = {}

    def fetch(self, origin: bytes, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """The entry at ``index`` and its inclusion proof in the tree of ``size``."""
        entries = self.entries[origin]
        if size > len(entries):
            raise InvalidAggregate(f"the snapshot holds {len(entries)} entries, not {size}")
        leaves = self._leaves.get(origin)
        if leaves is None or len(leaves) < size:
            leaves = self._leaves[origin] = [leaf_hash(entry) for entry in entries]
        return entries[index], inclusion_proof(leaves[:size], index)

    def honest(self, query: Query, sizes: Sequence[int], key_for: KeyFor) -> Claim | None:
        """The true claim over this snapshot for ``query`` at ``sizes`` (one per log of
        the query, in its order); None if no reading matches."""
        logged = []
        for origin, size in zip(query.log_ids, sizes, strict=True):
            for index, entry in enumerate(self.entries[origin][:size]):
                try:
                    reading = parse_reading(entry)
                except InvalidReading:
                    continue
                if query.matches(reading) and read_as_chain(entry, key_for) is not None:
                    logged.append(LoggedReading(origin, index, reading))
        try:
            return build(query, dict(zip(query.log_ids, sizes, strict=True)), logged)
        except InvalidAggregate:
            return None  # no reading matches


def read_data(posted: Posted, data: bytes | None) -> Claim | Verdict:
    """A posted claim's published ``data`` (None: it could not be read), decoded, or
    the verdict that it cannot be checked."""
    if data is None:
        return Verdict(posted.claim_id, "unverifiable", "its data cannot be read")
    try:
        claim = decode(data)
    except InvalidAggregate as exc:
        return Verdict(posted.claim_id, "unverifiable", f"its data is malformed: {exc}")
    if (claim.query.hash, claim.sizes, claim.root) != (posted.query_hash, posted.sizes,
                                                       posted.root):  # fmt: skip
        return Verdict(posted.claim_id, "unverifiable", "its data is not the posted claim's")
    return claim


def judge(posted: Posted, claim: Claim, snapshot: Snapshot, key_for: KeyFor) -> Verdict:
    """Judge a posted claim by its data (:func:`read_data`) against the logs."""
    honest = snapshot.honest(claim.query, claim.sizes, key_for)
    challenge = find_lie(claim, honest, posted.result, posted.count, snapshot.fetch,
                         lambda entry: read_as_chain(entry, key_for))  # fmt: skip
    if challenge is None:
        return Verdict(posted.claim_id, "true", f"{claim.count} readings, result {posted.result}")
    return Verdict(posted.claim_id, "lie", challenge.reason, challenge)
