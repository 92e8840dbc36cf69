"""Receipts: the log's signed promise that an entry sits at an index and will
be in an anchored checkpoint by a deadline.

A receipt is a C2SP signed note by the log's checkpoint key, so one verifier
serves both; its text cannot be mistaken for a checkpoint (its first line is a
fixed header that no origin may take)::

    trustmesh.dev/receipt/v1
    <origin>
    <index>
    <base64 leaf hash>
    <deadline, milliseconds since the Unix epoch>

A receipt whose index does not hold that leaf in a later anchored tree, or
that is not anchored by its deadline, is evidence against the log.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from trustmesh.errors import InvalidCheckpoint, InvalidReceipt
from trustmesh.log.checkpoint import RECEIPT_HEADER
from trustmesh.log.merkle import HASH_SIZE
from trustmesh.log.note import LineVerifier, NoteSigner, open_note, sign_note

__all__ = ["Receipt", "issue_receipt", "open_receipt"]

_LINES = 5


@dataclass(frozen=True)
class Receipt:
    origin: str
    index: int
    leaf_hash: bytes
    deadline: int

    def text(self) -> str:
        lines = [
            RECEIPT_HEADER,
            self.origin,
            str(self.index),
            base64.b64encode(self.leaf_hash).decode(),
            str(self.deadline),
        ]
        return "".join(line + "\n" for line in lines)


def issue_receipt(receipt: Receipt, signer: NoteSigner) -> str:
    """Sign ``receipt`` with the log's key (named by its origin)."""
    if signer.name != receipt.origin:
        raise ValueError("the log's key name must be its origin")
    if receipt.index < 0 or receipt.deadline < 0 or len(receipt.leaf_hash) != HASH_SIZE:
        raise ValueError("a receipt needs a non-negative index and deadline and a 32-byte hash")
    return sign_note(receipt.text(), signer.note_signers())


def open_receipt(note: str | bytes, verifier: LineVerifier) -> Receipt:
    """Verify a receipt with the log's key, offline, and parse it."""
    try:
        text = open_note(note, [verifier]).text
    except InvalidCheckpoint as exc:
        raise InvalidReceipt(str(exc)) from None
    lines = text[:-1].split("\n")
    if len(lines) != _LINES or lines[0] != RECEIPT_HEADER:
        raise InvalidReceipt("not a trustmesh receipt")
    _, origin, index, leaf, deadline = lines
    if origin != verifier.name:
        raise InvalidReceipt(f"receipt of {origin!r}, not {verifier.name!r}")
    for number in (index, deadline):
        if not number.isascii() or not number.isdigit() or (number != "0" and number[0] == "0"):
            raise InvalidReceipt(f"{number!r} is not a decimal without leading zeroes")
    try:
        leaf_hash = base64.b64decode(leaf, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidReceipt("leaf hash is not base64") from None
    if len(leaf_hash) != HASH_SIZE:
        raise InvalidReceipt("leaf hash must be 32 bytes")
    return Receipt(origin, int(index), leaf_hash, int(deadline))
