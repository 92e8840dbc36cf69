"""What a watcher checks, as pure state machines over what it has seen.

- :class:`CheckpointTracker`: every checkpoint of an origin must be signed by
  its key and consistent with the last one seen (a consistency proof from the
  log); otherwise the log showed a *split view*.
- (:class:`~trustmesh.watcher.seqindex.SeqIndex`, on disk, checks one payload
  per device and seq across every log watched.)
- :func:`audit_entry`: an entry a log holds must be a valid reading, signed
  by the key the registry holds for its device and seq; otherwise it is an
  *invalid entry*.

I/O (fetching checkpoints, proofs, entries, keys) is passed in; the same
verification path as the node and clients (:mod:`trustmesh.reading`,
:mod:`trustmesh.log.merkle`, :mod:`trustmesh.log.checkpoint`) does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trustmesh.batch_verify import Item, item, verify_items
from trustmesh.errors import InvalidCheckpoint, InvalidProof, InvalidReading
from trustmesh.identity import PublicKey
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.reading import Reading, check_alg, parse_reading

__all__ = ["CheckpointTracker", "Finding", "audit_entries", "audit_entry"]


@dataclass(frozen=True)
class Finding:
    """A misbehaviour found, with what proves it."""

    kind: str  # "split-view", "bad-checkpoint", "equivocation", "invalid-entry", …
    origin: str
    detail: str
    evidence: tuple[bytes | str, ...] = ()
    index: int | None = None  # the entry's index, when the finding is about one

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "origin": self.origin,
            "detail": self.detail,
            "index": self.index,
            "evidence": [e.hex() if isinstance(e, bytes) else e for e in self.evidence],
        }


ConsistencyFetcher = Callable[[int, int], list[bytes]]
NOTES_KEPT = 1024  # signed checkpoints kept per log: what an anchor is compared with


class CheckpointTracker:
    """The last verified checkpoint of one log, and the check of each new one."""

    def __init__(self, verifier: NoteVerifier, origin: str) -> None:
        self.verifier = verifier
        self.origin = origin
        self.latest: Checkpoint | None = None
        self.latest_note: str | None = None
        self.notes: dict[int, str] = {}  # the last NOTES_KEPT verified notes, by size

    def observe(self, note: str, consistency: ConsistencyFetcher) -> Finding | None:
        """Check a newly fetched signed checkpoint; a Finding if the log lied."""
        try:
            checkpoint = open_checkpoint(note, self.verifier, self.origin)
        except InvalidCheckpoint as exc:
            return Finding("bad-checkpoint", self.origin, str(exc), (note,))
        if self.latest is None or self.latest_note is None:
            self.latest, self.latest_note = checkpoint, note
            self._keep(checkpoint.size, note)
            return None
        seen = [(self.latest, self.latest_note), (checkpoint, note)]
        (old, old_note), (new, new_note) = sorted(seen, key=lambda pair: pair[0].size)
        finding = self._consistent(old, old_note, new, new_note, consistency)
        if finding is None and checkpoint.size >= self.latest.size:
            self.latest, self.latest_note = checkpoint, note
            self._keep(checkpoint.size, note)
        return finding

    def _keep(self, size: int, note: str) -> None:
        self.notes[size] = note
        if len(self.notes) > NOTES_KEPT:
            del self.notes[min(self.notes)]

    def _consistent(
        self,
        old: Checkpoint,
        old_note: str,
        new: Checkpoint,
        new_note: str,
        consistency: ConsistencyFetcher,
    ) -> Finding | None:
        evidence = (old_note, new_note)
        if old.size == new.size:
            if old.root != new.root:
                return Finding(
                    "split-view", self.origin, f"two roots for size {old.size}", evidence
                )
            return None
        try:
            proof = consistency(old.size, new.size)
            merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
        except InvalidProof as exc:
            return Finding(
                "split-view",
                self.origin,
                f"{old.size} → {new.size} not consistent: {exc}",
                evidence,
            )
        return None


def audit_entry(
    entry: bytes, origin: str, index: int, key_for: Callable[[str, int], PublicKey | None]
) -> Finding | None:
    """Check one logged entry; ``key_for(did, seq)`` is the registry's key (None if unknown)."""
    found = audit_entries([entry], origin, index, key_for)[1]
    return found[0] if found else None


def audit_entries(
    entries: list[bytes],
    origin: str,
    start: int,
    key_for: Callable[[str, int], PublicKey | None],
    verify: Callable[[list[Item]], list[str | None]] = verify_items,
) -> tuple[list[Reading | None], list[Finding]]:
    """Check logged entries ``start…``: each parsed (None where it does not parse),
    and what is wrong with them. The signatures are checked in one batch by
    ``verify`` (here by default; across a process pool if it says so)."""
    prepared = [
        _prepare(entry, origin, index, key_for) for index, entry in enumerate(entries, start)
    ]
    checked = [(i, item(r, k)) for i, (r, k, _) in enumerate(prepared) if r and k]
    verdicts = verify([signature for _, signature in checked])
    reasons = {i: why for (i, _), why in zip(checked, verdicts, strict=True) if why}
    findings: list[Finding] = []
    for offset, (_, _, found) in enumerate(prepared):
        if offset in reasons:
            findings.append(
                _bad_signature(entries[offset], origin, start + offset, reasons[offset])
            )
        elif found is not None:
            findings.append(found)
    return [reading for reading, _, _ in prepared], findings


def _prepare(
    entry: bytes, origin: str, index: int, key_for: Callable[[str, int], PublicKey | None]
) -> tuple[Reading | None, PublicKey | None, Finding | None]:
    """All of the checks but the signature: the parsed reading and the key to
    check it with, or the Finding that makes checking it moot."""
    try:
        reading = parse_reading(entry)
    except InvalidReading as exc:
        return None, None, Finding("invalid-entry", origin, f"#{index}: {exc}", (entry,), index)
    key = key_for(reading.did, reading.seq)
    if key is None:
        detail = f"#{index}: {reading.did} is not registered"
        return reading, None, Finding("invalid-entry", origin, detail, (entry,), index)
    try:
        check_alg(reading, key)
    except InvalidReading as exc:
        return reading, None, _bad_signature(entry, origin, index, str(exc))
    return reading, key, None


def _bad_signature(entry: bytes, origin: str, index: int, reason: str) -> Finding:
    """The Finding for an entry whose signature the registry's key does not verify."""
    return Finding("invalid-entry", origin, f"#{index}: {reason}", (entry,), index)
