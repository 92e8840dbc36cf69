"""Proof bundles: one reading with everything needed to check it offline.

A bundle (JSON, ``"format": "trustmesh-proof-bundle/v2"``) holds the reading as
logged, its receipt (a C2SP tlog-proof: its index and inclusion proof in a tree
the log signed, with the signed checkpoint), and the anchor: the on-chain tree of
size A (its root, the chain and the LogAnchor contract) with a consistency proof
between A and the checkpoint's size, so the two trees are shown to be one log. A
bundle may start from any receipt a device holds (:func:`make_bundle` takes it as
it is); a node makes them with its latest checkpoint. Version 1 bundles (index,
checkpoint and inclusion as separate fields) are still read.

:func:`verify_bundle` checks, in order, and says which step failed:

1. ``reading``: a well-formed reading, signed by the key its did:key names;
2. ``checkpoint``: the receipt's checkpoint, signed by the log's key (the
   bundle's, or one you pin);
3. ``inclusion``: the reading is at its index in the checkpoint's tree;
4. ``anchor``: the index is inside the anchored tree, and the anchored and the
   signed trees are consistent (either may be the larger);
5. ``chain`` (only given a ``chain`` lookup): the anchored root is on-chain at that
   size, the Registry holds the reading's key for its seq, and the log key is the
   one the Registry holds for the origin.

Pure: bytes and JSON in, a report out; the chain is reached through the lookup
the caller passes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trustmesh.errors import (
    InvalidCheckpoint,
    InvalidDid,
    InvalidProof,
    InvalidReading,
    InvalidReceipt,
)
from trustmesh.identity import PublicKey, key_from_did
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.log.tlog_proof import TlogProof, format_tlog_proof, parse_tlog_proof
from trustmesh.reading import parse_reading, verify_reading

__all__ = ["FORMAT", "ChainFacts", "Report", "make_bundle", "verify_bundle", "verify_receipt"]

FORMAT = "trustmesh-proof-bundle/v2"
FORMAT_V1 = "trustmesh-proof-bundle/v1"


def make_bundle(
    *,
    origin: str,
    verifier_key: str,
    entry: bytes,
    proof: str,
    anchor: dict[str, Any] | None,
) -> dict[str, Any]:
    """A bundle of ``entry`` and its receipt ``proof`` (tlog-proof text); ``anchor``
    is {chain_id, log_anchor, size, root (bytes), consistency (between the anchored
    size and the receipt's checkpoint size, from the smaller)}."""
    reading = parse_reading(entry)
    document: dict[str, Any] = {
        "format": FORMAT,
        "origin": origin,
        "verifier_key": verifier_key,
        "did": reading.did,
        "seq": reading.seq,
        "index": parse_tlog_proof(proof).index,
        "entry": base64.b64encode(entry).decode(),
        "proof": proof,
        "anchor": None,
    }
    if anchor is not None:
        document["anchor"] = {
            "chain_id": anchor["chain_id"],
            "log_anchor": anchor["log_anchor"],
            "size": anchor["size"],
            "root": anchor["root"].hex(),
            "consistency": [h.hex() for h in anchor["consistency"]],
        }
    return document


@dataclass(frozen=True)
class ChainFacts:
    """What the chain says, for the ``chain`` step."""

    anchored_root: bytes | None  # LogAnchor.roots(origin, size), None if not anchored
    device_key: PublicKey | None  # the Registry's key for (did, seq)
    log_key: bytes | None  # the Registry's Ed25519 checkpoint key of the origin


ChainLookup = Callable[[str, str, int, int], ChainFacts]


@dataclass
class Report:
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.steps) and all(step["ok"] for step in self.steps)

    @property
    def failed(self) -> str | None:
        return next((step["step"] for step in self.steps if not step["ok"]), None)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "failed": self.failed, "steps": self.steps}


class _Failed(Exception):
    pass


@dataclass
class _Bundle:
    """A bundle's fields, decoded, and what the steps learn on the way."""

    entry: bytes
    origin: str
    did: object
    seq: object
    proof: TlogProof
    verifier: NoteVerifier
    anchor: dict[str, Any] | None
    named: bool = True  # a bundle names its reading's device and seq; a receipt does not
    signed: Checkpoint | None = None

    @classmethod
    def decode(cls, bundle: Any, verifier_key: str | None) -> _Bundle:
        if not isinstance(bundle, dict) or bundle.get("format") not in (FORMAT, FORMAT_V1):
            raise _Failed(f"not a {FORMAT}")
        try:
            anchor = bundle.get("anchor")
            if bundle["format"] == FORMAT_V1:  # its receipt in three fields
                inclusion = [bytes.fromhex(str(h)) for h in bundle["inclusion"]]
                text = format_tlog_proof(int(bundle["index"]), inclusion, str(bundle["checkpoint"]))
            else:
                text = str(bundle["proof"])
            proof = parse_tlog_proof(text)
            if int(bundle["index"]) != proof.index:
                raise ValueError("the bundle's index is not its receipt's")
            return cls(
                entry=base64.b64decode(str(bundle["entry"]), validate=True),
                origin=str(bundle["origin"]),
                did=bundle.get("did"),
                seq=bundle.get("seq"),
                proof=proof,
                verifier=NoteVerifier.from_vkey(verifier_key or str(bundle["verifier_key"])),
                anchor=anchor if isinstance(anchor, dict) else None,
            )
        except (
            KeyError,
            TypeError,
            ValueError,
            binascii.Error,
            InvalidCheckpoint,
            InvalidReceipt,
        ) as exc:
            raise _Failed(f"malformed: {exc!r}") from None

    @property
    def index(self) -> int:
        return self.proof.index

    def reading(self) -> str:
        parsed = parse_reading(self.entry)
        verify_reading(self.entry, key_from_did(parsed.did))
        if self.named and (parsed.did, parsed.seq) != (self.did, self.seq):
            raise _Failed("the bundle names another device or seq than its reading")
        return f"{parsed.did} seq {parsed.seq}: signed by its key"

    def checkpoint(self) -> str:
        self.signed = open_checkpoint(self.proof.checkpoint, self.verifier, self.origin)
        return f"{self.origin} size {self.signed.size}, signed by {self.verifier.vkey}"

    def included(self) -> str:
        assert self.signed is not None
        leaf = merkle.leaf_hash(self.entry)
        merkle.verify_inclusion(
            leaf, self.index, self.signed.size, list(self.proof.hashes), self.signed.root
        )
        return f"entry {self.index} of {self.signed.size}"

    def anchored(self) -> str:
        assert self.signed is not None
        if self.anchor is None:
            raise _Failed("not anchored yet: no anchor in the bundle")
        try:
            size, root = int(self.anchor["size"]), bytes.fromhex(str(self.anchor["root"]))
            proof = [bytes.fromhex(str(h)) for h in self.anchor["consistency"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise _Failed(f"malformed anchor: {exc!r}") from None
        if self.index >= size:
            raise _Failed(f"entry {self.index} is beyond the anchored tree of {size}")
        signed = self.signed
        if size <= signed.size:
            merkle.verify_consistency(size, signed.size, root, signed.root, proof)
        else:
            merkle.verify_consistency(signed.size, size, signed.root, root, proof)
        return f"anchored at size {size} on chain {self.anchor.get('chain_id')}"

    def on_chain(self, lookup: ChainLookup) -> str:
        assert self.anchor is not None
        reading = parse_reading(self.entry)
        facts = lookup(self.origin, reading.did, reading.seq, int(self.anchor["size"]))
        if facts.anchored_root != bytes.fromhex(str(self.anchor["root"])):
            raise _Failed("the chain holds another root (or none) at that size")
        if facts.device_key != key_from_did(reading.did):
            raise _Failed("the Registry holds another key (or none) for that seq")
        if facts.log_key != self.verifier.public_key:
            raise _Failed("the Registry holds another checkpoint key for the log")
        return "root, device key and log key as the chain holds them"


def verify_receipt(proof: str, entry: bytes, verifier_key: str) -> Report:
    """Check a receipt (tlog-proof text) of ``entry`` with the log's key, offline:
    the steps ``reading``, ``checkpoint`` and ``inclusion`` of a bundle (a receipt
    alone says nothing of anchors); ``format`` if the text is not a tlog-proof."""
    report = Report()
    try:
        parsed = parse_tlog_proof(proof)
        decoded = _Bundle(
            entry=entry,
            origin=parsed.checkpoint.partition("\n")[0],
            did=None,
            seq=None,
            proof=parsed,
            verifier=NoteVerifier.from_vkey(verifier_key),
            anchor=None,
            named=False,
        )
    except (InvalidReceipt, InvalidCheckpoint) as exc:
        report.steps.append({"step": "format", "ok": False, "detail": str(exc)})
        return report
    _run(report, [
        ("reading", decoded.reading),
        ("checkpoint", decoded.checkpoint),
        ("inclusion", decoded.included),
    ])  # fmt: skip
    return report


def verify_bundle(
    bundle: Any, *, verifier_key: str | None = None, chain: ChainLookup | None = None
) -> Report:
    """Check a bundle step by step (see the module); stops at the first failure.

    ``verifier_key`` pins the log's key (else the bundle's is used, which only
    ``chain`` can vouch for); ``chain(origin, did, seq, anchored_size)`` reads the chain.
    """
    report = Report()
    try:
        decoded = _Bundle.decode(bundle, verifier_key)
    except _Failed as exc:
        report.steps.append({"step": "format", "ok": False, "detail": str(exc)})
        return report
    steps: list[tuple[str, Callable[[], str]]] = [
        ("reading", decoded.reading),
        ("checkpoint", decoded.checkpoint),
        ("inclusion", decoded.included),
        ("anchor", decoded.anchored),
    ]
    if chain is not None:
        steps.append(("chain", lambda: decoded.on_chain(chain)))
    _run(report, steps)
    return report


def _run(report: Report, steps: list[tuple[str, Callable[[], str]]]) -> None:
    """Each step in turn, recorded in ``report``, up to the first that fails."""
    for name, check in steps:
        try:
            detail = check()
        except (_Failed, InvalidReading, InvalidCheckpoint, InvalidProof, InvalidDid) as exc:
            report.steps.append({"step": name, "ok": False, "detail": str(exc)})
            break
        report.steps.append({"step": name, "ok": True, "detail": detail})
