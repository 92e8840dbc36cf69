"""Each topic's validator (pure: keys come from the callables passed in).

A peer runs the validator of a message's topic before it forwards the message
(or hands it to its own node or watcher): readings are checked against their
devices' keys, checkpoints and receipts against their logs' keys. A message that
fails is dropped at the first peer, with the reason (counted, never forwarded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trustmesh._cborseq import InvalidSequence, split_sequence
from trustmesh.batch_verify import Item, item, verify_items
from trustmesh.errors import (
    InvalidCheckpoint,
    InvalidDid,
    InvalidMeshMessage,
    InvalidReading,
    InvalidReceipt,
)
from trustmesh.identity import PublicKey, key_from_did
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.inclusions import Inclusions
from trustmesh.log.note import LineVerifier
from trustmesh.log.receipt import check_proof
from trustmesh.mesh.receipts import unpack
from trustmesh.mesh.topics import CHECKPOINTS, MAX_MESSAGE, READINGS, RECEIPTS, WITNESS
from trustmesh.reading import check_alg, parse_reading
from trustmesh.reputation.witness import CHALLENGE
from trustmesh.reputation.witness import WITNESS as ANSWER

__all__ = ["Keys", "Verdict", "Verify", "did_key", "envelope", "validate"]

MAX_READINGS = 5_000
WITNESS_SENSORS = frozenset({CHALLENGE, ANSWER})  # peer witnessing's two kinds of reading

# Signature checks: for each item, None if it verifies, else why not.
Verify = Callable[[list[Item]], list[str | None]]


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str = ""
    items: int = 0  # readings, checkpoints or receipts the message carries
    kind: str = ""  # a refusal's kind, for counters: few values, unlike reasons
    blame: bool = True  # a refusal: the sender's fault (a strike), or only not taken here


@dataclass(frozen=True)
class Keys:
    """Where a validator finds keys: a device's at a seq (None: not registered), and
    a log's checkpoint verifier by origin (None: not a registered log)."""

    device: Callable[[str, int], PublicKey | None]
    log: Callable[[str], LineVerifier | None]


def did_key(did: str, seq: int) -> PublicKey | None:
    """A device's key as its did:key names it (None: not a did:key): the key a peer
    without a Registry checks readings against."""
    try:
        return key_from_did(did)
    except InvalidDid:
        return None


def validate(topic: str, data: bytes, keys: Keys, verify: Verify = verify_items) -> Verdict:
    """Whether ``data`` may be forwarded on ``topic``, and why not. ``verify``
    checks readings' signatures (:mod:`trustmesh.batch_verify`: in a pool, say)."""
    if (verdict := envelope(data)) is not None:
        return verdict
    if topic in (READINGS, WITNESS):
        return _readings(data, keys, verify, witness=topic == WITNESS)
    if topic == CHECKPOINTS:
        return _checkpoint(data, keys)
    if topic == RECEIPTS:
        return _receipt(data, keys)
    return Verdict(False, f"unknown topic {topic!r}", kind="unknown-topic")


def envelope(data: bytes) -> Verdict | None:
    """The refusal of a message too large for any topic, or None."""
    if len(data) > MAX_MESSAGE:
        return Verdict(False, f"over {MAX_MESSAGE} bytes", kind="oversized")
    return None


def _readings(data: bytes, keys: Keys, verify: Verify, *, witness: bool) -> Verdict:
    try:
        items, decoded = split_sequence(data, MAX_READINGS)
    except InvalidSequence as exc:
        return Verdict(False, f"not a sequence of readings: {exc}", kind="malformed")
    checks: list[Item] = []
    for k, (entry, value) in enumerate(zip(items, decoded, strict=True)):
        try:
            reading = parse_reading(entry, decoded=value)
            key = keys.device(reading.did, reading.seq)
            if key is None:
                return Verdict(
                    False,
                    f"reading {k}: its device is not registered",
                    kind="unknown-device",
                    blame=False,
                )  # (not known here)
            check_alg(reading, key)
        except InvalidReading as exc:
            return Verdict(False, f"reading {k}: {exc}", kind="bad-reading")
        if witness and reading.sensor not in WITNESS_SENSORS:
            return Verdict(False, f"reading {k}: not a challenge or a witness reading",
                           kind="bad-reading")  # fmt: skip
        checks.append(item(reading, key))
    for k, reason in enumerate(verify(checks)):
        if reason is not None:
            return Verdict(False, f"reading {k}: {reason}", kind="bad-reading")
    return Verdict(True, items=len(items))


def _checkpoint(data: bytes, keys: Keys) -> Verdict:
    origin = data.split(b"\n", 1)[0].decode(errors="replace")
    verifier = keys.log(origin)
    if verifier is None:
        return Verdict(
            False, f"no registered log {origin[:80]!r}", kind="unknown-log", blame=False
        )  # (perhaps registered where the sender looked)
    try:
        open_checkpoint(data, verifier, origin)
    except InvalidCheckpoint as exc:
        return Verdict(False, f"checkpoint: {exc}", kind="bad-checkpoint")
    return Verdict(True, items=1)


def _receipt(data: bytes, keys: Keys) -> Verdict:
    """A batch's receipts (:mod:`trustmesh.mesh.receipts`): every one must verify
    under its log's key (refusals do not travel: unsigned, a relay could forge
    them)."""
    try:
        origin, receipts = unpack(data)
    except InvalidMeshMessage as exc:
        return Verdict(False, str(exc), kind="malformed")
    verifier = keys.log(origin)
    if verifier is None:
        return Verdict(
            False, f"no registered log {origin[:80]!r}", kind="unknown-log", blame=False
        )  # (perhaps registered where the sender looked)
    opened: dict[str, Checkpoint] = {}  # the checkpoint's signature checked once
    trees: dict[str, Inclusions] = {}  # and the hashes the proofs share
    for k, (leaf, proof) in enumerate(receipts):
        try:
            check_proof(proof, leaf, verifier, origin, opened=opened, trees=trees)
        except InvalidReceipt as exc:
            return Verdict(False, f"receipt {k}: {exc}", kind="bad-receipt")
    return Verdict(True, items=len(receipts))
