"""What a score is computed from: public evidence only, each item naming where
anyone can check it.

Evidence about a subject (a device or a node, by its Registry id) is counted per
kind; each kind is good or bad for the subject. An item carries a reference, the
32-byte hash under which it can be found and checked: the leaf hash of a logged
reading, the hash of a signed checkpoint, the transaction of a chain event. The
witness graph comes from attestations, witness readings naming the subject they
saw; pre-trust from the Registry's stakes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from trustmesh.errors import InvalidEvidence

__all__ = ["Attestation", "Evidence", "Kind", "Stake", "check_id", "tally_verdicts"]

ID_SIZE = 32


class Kind(IntEnum):
    """Evidence kinds; the value is part of the committed encoding: never renumber."""

    # a device's, from the logs
    READINGS_LOGGED = 1  # readings logged in the epoch (good)
    SEQ_GAP = 2  # a seq skipped: readings signed and never logged
    CLOCK_DRIFT = 3  # a reading's ts far from the log's time of arrival
    REFUSED = 4  # a reading refused on evidence (a bad signature, a replay)
    EQUIVOCATION = 5  # two readings signed with one seq (proven)
    WITNESSED = 6  # witnesses whose own reading agrees with the subject's (good)
    IMPOSSIBLE_CLAIM = 7  # a witness claim that cannot be true (range, self, two places)
    WITNESS_DISAGREES = 8  # witnesses whose own reading contradicts the subject's
    CONTRADICTED = 9  # this witness's verdicts that the other witnesses clearly overruled
    # a node's, from the chain and the logs
    ANCHOR_KEPT = 10  # a checkpoint anchored in time (good)
    ANCHOR_LATE = 11  # a signed checkpoint proven unanchored past the merge delay
    FRAUD_LOST = 12  # a fraud proof against the subject succeeded (split view, invalid entry)
    FRAUD_WON = 13  # the subject proved another's fraud (good)
    RECEIPT_KEPT = 14  # a receipt honoured by an anchored tree (good)
    # either's, from the Registry
    SLASHED = 20
    REVOKED = 21


GOOD = frozenset(
    {Kind.READINGS_LOGGED, Kind.WITNESSED, Kind.ANCHOR_KEPT, Kind.FRAUD_WON, Kind.RECEIPT_KEPT}
)


def check_id(value: bytes, what: str) -> bytes:
    """A subject's Registry id: 32 bytes (SHA-256 of its DID or log origin)."""
    if type(value) is not bytes or len(value) != ID_SIZE:
        raise InvalidEvidence(f"{what} must be a 32-byte id")
    return value


@dataclass(frozen=True, order=True)
class Evidence:
    """``count`` events of ``kind`` about ``subject``, found under ``ref``."""

    subject: bytes
    kind: Kind
    ref: bytes
    count: int = 1

    def __post_init__(self) -> None:
        check_id(self.subject, "an evidence item's subject")
        check_id(self.ref, "an evidence item's reference")
        if not isinstance(self.kind, Kind):
            raise InvalidEvidence(f"unknown evidence kind {self.kind!r}")
        if type(self.count) is not int or not 0 < self.count < 1 << 32:
            raise InvalidEvidence("an evidence item counts 1 to 2^32 - 1 events")


@dataclass(frozen=True, order=True)
class Attestation:
    """``witness`` attests that it saw ``subject``, in the witness reading ``ref``, and
    whether its own measurement ``agrees`` with the subject's reading of that moment.

    An agreeing attestation is an edge of the witness graph (the witness passes the
    subject trust) and good evidence for the subject; a disagreeing one, bad
    evidence. Either counts as much as the witness is trusted: an identity nobody
    staked for moves no score, up or down."""

    witness: bytes
    subject: bytes
    ref: bytes
    agrees: bool = True

    def __post_init__(self) -> None:
        check_id(self.witness, "a witness")
        check_id(self.subject, "an attested subject")
        check_id(self.ref, "an attestation's reference")


@dataclass(frozen=True, order=True)
class Stake:
    """A subject's stake at the epoch's start, in wei, registered ``age`` epochs ago;
    ``slashed``: it lost stake to a proof, or was revoked (no pre-trust then)."""

    subject: bytes
    amount: int
    age: int
    slashed: bool = False

    def __post_init__(self) -> None:
        check_id(self.subject, "a staked subject")
        if type(self.amount) is not int or not 0 <= self.amount < 1 << 128:
            raise InvalidEvidence("a stake is 0 to 2^128 - 1 wei")
        if type(self.age) is not int or not 0 <= self.age < 1 << 32:
            raise InvalidEvidence("a stake's age is 0 to 2^32 - 1 epochs")


Verdicts = dict[tuple[int, int, bool], int]
"""(witness, subject, agrees), by index in the table's subjects -> distinct witness
readings saying so, at most ``edge_cap``."""


def tally_verdicts(
    subjects: Sequence[bytes], attestations: Iterable[Attestation], edge_cap: int
) -> Verdicts:
    """The epoch's attestations counted once, for the trust graph and the witness
    evidence alike: per (witness, subject, verdict), its distinct witness readings
    (capped); attestations of subjects outside the table, or of oneself, dropped."""
    index = {subject: i for i, subject in enumerate(subjects)}
    refs: dict[tuple[int, int, bool], set[bytes]] = {}
    for attestation in attestations:
        i, j = index.get(attestation.witness), index.get(attestation.subject)
        if i is not None and j is not None and i != j:
            refs.setdefault((i, j, attestation.agrees), set()).add(attestation.ref)
    return {key: min(len(seen), edge_cap) for key, seen in refs.items()}
