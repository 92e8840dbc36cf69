"""Peer witnessing (proof of presence): the challenge and witness readings, and the
rules that turn an epoch's logged ones into attestations and evidence.

Both are ordinary readings, signed at the source and logged like any other:

- a **challenge**: sensor ``challenge``, value the challenger's own measurement
  (a number), extra ``pos`` = ``[east_m, north_m]``, integers, metres in the
  fleet's planar frame;
- a **witness reading** (an answer): sensor ``witness``, value the witness's own
  measurement, extras ``challenge`` (the challenge's RFC 9162 leaf hash, 32
  bytes), ``of`` (the challenger's DID) and ``pos``.

An answer within ``answer_ms`` of its challenge becomes an attestation: the
witness vouches for the challenger, agreeing when the two measurements are
within ``tolerance``. What cannot be true counts against whoever claimed it, as
``IMPOSSIBLE_CLAIM`` evidence, decided by the rules alone (Helium fought spoofing
with a denylist its operators kept by hand; here every judgement is recomputable
from the logs):

- a witness farther than ``range_m`` from the challenge's spot (the witness);
- a witness of itself: the challenger's own DID, or another identity closer than
  ``min_separation_m`` (one device under two names: both);
- one identity in two places at once: two of its claims (challenges, accepted
  answers) farther apart than ``max_speed_mps`` allows in the time between them
  (the identity);
- a closed cluster: ``cluster_min`` or more identities that witness only one
  another, none of them staked (each of them).

Answers that are not well formed, that name an unknown challenge or a different
challenger, or that come too late or too early are refused: they count for no
one, and :attr:`Witnessing.refused` says why.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustmesh.log.merkle import leaf_hash
from trustmesh.reading import Reading
from trustmesh.reputation.evidence import Attestation, Evidence, Kind

__all__ = [
    "CHALLENGE",
    "WITNESS",
    "Claim",
    "WitnessRules",
    "Witnessing",
    "challenge_fields",
    "claim_of",
    "judge",
    "subject_id",
    "witness_fields",
]

CHALLENGE = "challenge"
WITNESS = "witness"


def subject_id(did: str) -> bytes:
    """A DID's subject id: SHA-256 of the DID, the Registry's key for it."""
    return hashlib.sha256(did.encode()).digest()


def challenge_fields(pos: tuple[int, int]) -> dict[str, Any]:
    """The extras of a challenge at ``pos`` (``sign_reading(..., extra=...)``)."""
    return {"pos": [int(pos[0]), int(pos[1])]}


def witness_fields(challenge: bytes, challenger: str, pos: tuple[int, int]) -> dict[str, Any]:
    """The extras of an answer to the challenge logged as ``challenge`` (its entry)."""
    return {"challenge": leaf_hash(challenge), "of": challenger, "pos": [int(pos[0]), int(pos[1])]}


@dataclass(frozen=True)
class WitnessRules:
    """What a witness can hear and how fast a device can move; committed by a
    fleet's configuration, the same for everyone who recomputes."""

    range_m: int = 1_000
    answer_ms: int = 60_000
    tolerance: float = 2.0
    max_speed_mps: int = 50
    min_separation_m: int = 1
    cluster_min: int = 3


@dataclass(frozen=True)
class Claim:
    """A well-formed challenge or answer: who claimed to be where, when."""

    did: str
    ts: int
    pos: tuple[int, int]
    value: float
    hash: bytes  # its leaf hash


@dataclass
class Witnessing:
    """An epoch's witnessing, judged."""

    attestations: list[Attestation] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    refused: list[tuple[bytes, str]] = field(default_factory=list)  # (leaf hash, why)


def judge(
    readings: Iterable[Reading], rules: WitnessRules, staked: Iterable[bytes] = ()
) -> Witnessing:
    """Judge the challenges and answers among ``readings`` (one epoch's, from any
    number of logs; duplicates count once). ``staked``: subject ids with
    unslashed stake. Deterministic: the result does not depend on the order."""
    out = Witnessing()
    challenges: dict[bytes, Claim] = {}
    answers: list[tuple[Claim, bytes, str]] = []
    for reading in sorted({r.entry: r for r in readings}.values(), key=_order):
        digest = leaf_hash(reading.entry)
        if reading.sensor == CHALLENGE:
            claim = _claim(reading, digest)
            if claim is None:
                out.refused.append((digest, "a challenge needs a numeric value and a pos"))
            else:
                challenges[digest] = claim
        elif reading.sensor == WITNESS:
            claim = _claim(reading, digest)
            target, of = reading.extra.get("challenge"), reading.extra.get("of")
            if claim is None or type(target) is not bytes or type(of) is not str:
                out.refused.append((digest, "an answer needs a value, pos, challenge and of"))
            else:
                answers.append((claim, target, of))
    edges: set[tuple[str, str]] = set()
    claims = list(challenges.values())
    for answer, target, of in answers:
        challenge = challenges.get(target)
        reason = _refusal(answer, challenge, of, rules)
        if reason is not None:
            out.refused.append((answer.hash, reason))
            continue
        assert challenge is not None
        claims.append(answer)
        impossible = _impossible(answer, challenge, rules)
        out.evidence.extend(impossible)
        if not impossible:
            agrees = abs(answer.value - challenge.value) <= rules.tolerance
            out.attestations.append(
                Attestation(subject_id(answer.did), subject_id(challenge.did), answer.hash, agrees)
            )
            edges.add((answer.did, challenge.did))
    out.evidence.extend(_two_places(claims, rules))
    out.evidence.extend(_closed_clusters(edges, set(staked), rules))
    out.evidence.sort()
    return out


def claim_of(reading: Reading) -> Claim | None:
    """The claim a challenge or an answer makes (where its device says it stands,
    when, what it measured); None if it is not well formed."""
    return _claim(reading, leaf_hash(reading.entry))


def _order(reading: Reading) -> tuple[str, int, bytes]:
    return reading.did, reading.seq, reading.entry


def _claim(reading: Reading, digest: bytes) -> Claim | None:
    value, pos = reading.value, reading.extra.get("pos")
    if type(value) not in (int, float) or not isinstance(pos, list) or len(pos) != 2:
        return None
    if any(type(p) is not int for p in pos):
        return None
    return Claim(reading.did, reading.ts, (pos[0], pos[1]), float(value), digest)


def _refusal(answer: Claim, challenge: Claim | None, of: str, rules: WitnessRules) -> str | None:
    if challenge is None:
        return "answers a challenge not logged in this epoch"
    if of != challenge.did:
        return "names a challenger other than the challenge's"
    if not challenge.ts <= answer.ts <= challenge.ts + rules.answer_ms:
        return f"not within {rules.answer_ms} ms after its challenge"
    return None


def _impossible(answer: Claim, challenge: Claim, rules: WitnessRules) -> list[Evidence]:
    witness, challenger = subject_id(answer.did), subject_id(challenge.did)
    if answer.did == challenge.did:
        return [Evidence(witness, Kind.IMPOSSIBLE_CLAIM, answer.hash)]
    apart = _squared(answer.pos, challenge.pos)
    if apart > rules.range_m**2:
        return [Evidence(witness, Kind.IMPOSSIBLE_CLAIM, answer.hash)]
    if apart < rules.min_separation_m**2:
        return [
            Evidence(witness, Kind.IMPOSSIBLE_CLAIM, answer.hash),
            Evidence(challenger, Kind.IMPOSSIBLE_CLAIM, answer.hash),
        ]
    return []


def _two_places(claims: Sequence[Claim], rules: WitnessRules) -> list[Evidence]:
    """Consecutive claims of one identity farther apart than it could have moved."""
    by_did: dict[str, list[Claim]] = {}
    for claim in claims:
        by_did.setdefault(claim.did, []).append(claim)
    found: list[Evidence] = []
    for did, own in sorted(by_did.items()):
        own.sort(key=lambda c: (c.ts, c.hash))
        for before, after in itertools.pairwise(own):
            # in millimetres, so that the comparison stays in integers
            reach = rules.max_speed_mps * (after.ts - before.ts) + 1000 * rules.min_separation_m
            if 1000**2 * _squared(before.pos, after.pos) > reach**2:
                found.append(Evidence(subject_id(did), Kind.IMPOSSIBLE_CLAIM, after.hash))
    return found


def _closed_clusters(
    edges: set[tuple[str, str]], staked: set[bytes], rules: WitnessRules
) -> list[Evidence]:
    """Groups that witness only one another, with no stake among them."""
    neighbours: dict[str, set[str]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    seen: set[str] = set()
    found: list[Evidence] = []
    for start in sorted(neighbours):
        if start in seen:
            continue
        group, frontier = {start}, [start]
        while frontier:
            for other in neighbours[frontier.pop()] - group:
                group.add(other)
                frontier.append(other)
        seen |= group
        ids = sorted(subject_id(did) for did in group)
        if len(group) >= rules.cluster_min and not staked.intersection(ids):
            ref = hashlib.sha256(b"".join(ids)).digest()
            found.extend(Evidence(i, Kind.IMPOSSIBLE_CLAIM, ref) for i in ids)
    return found


def _squared(a: tuple[int, int], b: tuple[int, int]) -> int:
    """The squared distance in m²: integers, the same on every machine."""
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
