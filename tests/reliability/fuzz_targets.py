"""The parsers that take bytes from outside, each as a fuzz target: a function of
arbitrary bytes that may refuse them only with the parser's own documented error.
Anything else it raises (or a hang, or a crash) is a finding.

Shared by the coverage-guided fuzzer (:mod:`tests.reliability.fuzz`, atheris)
and the regression test that replays the kept inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress

from trustmesh._cborseq import InvalidSequence, split_sequence
from trustmesh.aggregate.claim import decode as decode_claim
from trustmesh.errors import (
    InvalidAggregate,
    InvalidCheckpoint,
    InvalidMeshMessage,
    InvalidReading,
    InvalidReceipt,
    InvalidVoucher,
)
from trustmesh.identity import Alg, PublicKey
from trustmesh.log.checkpoint import parse_checkpoint_text
from trustmesh.log.note import NoteVerifier, open_note, parse_note
from trustmesh.log.tlog_proof import parse_tlog_proof
from trustmesh.market.x402_channel import ChannelPayment
from trustmesh.mesh.binding import read_binding
from trustmesh.mesh.receipts import unpack
from trustmesh.mesh.topics import CHECKPOINTS, READINGS, RECEIPTS, WITNESS
from trustmesh.mesh.validate import Keys, did_key, validate
from trustmesh.reading import parse_reading, verify_reading

__all__ = ["TARGETS"]

ORIGIN = "fuzz.example/log"
_LOG = NoteVerifier(ORIGIN, bytes(range(32)))  # a fixed key: signatures will not match
_KEYS = Keys(did_key, lambda origin: _LOG if origin == ORIGIN else None)
_DEVICE = PublicKey(Alg.EDDSA, bytes(32))


def reading(data: bytes) -> None:
    with suppress(InvalidReading):
        parse_reading(data)
    with suppress(InvalidReading):
        verify_reading(data)  # against its own did:key
    with suppress(InvalidReading):
        verify_reading(data, _DEVICE)  # against another key


def cbor_sequence(data: bytes) -> None:
    with suppress(InvalidSequence):
        split_sequence(data, 5_000)


def note(data: bytes) -> None:
    with suppress(InvalidCheckpoint):
        parse_note(data)
    with suppress(InvalidCheckpoint):
        open_note(data, [_LOG])


def checkpoint(data: bytes) -> None:
    with suppress(InvalidCheckpoint, UnicodeDecodeError):
        parse_checkpoint_text(data.decode())


def tlog_proof(data: bytes) -> None:
    with suppress(InvalidReceipt):
        parse_tlog_proof(data)


def voucher(data: bytes) -> None:
    """An x402 channel payment's payload, as the JSON a client sends."""
    try:
        payload = json.loads(data)
    except ValueError:
        return
    if isinstance(payload, dict):
        with suppress(InvalidVoucher):
            ChannelPayment.from_payload(payload)


def mesh_message(data: bytes) -> None:
    """Every topic's validator: a verdict for anything, never an exception."""
    for topic in (READINGS, WITNESS, CHECKPOINTS, RECEIPTS):
        validate(topic, data, _KEYS)
    with suppress(InvalidMeshMessage):
        unpack(data)
    with suppress(InvalidMeshMessage):
        read_binding(data)


def claim_data(data: bytes) -> None:
    with suppress(InvalidAggregate):
        decode_claim(data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "reading": reading,
    "cbor_sequence": cbor_sequence,
    "note": note,
    "checkpoint": checkpoint,
    "tlog_proof": tlog_proof,
    "voucher": voucher,
    "mesh_message": mesh_message,
    "claim_data": claim_data,
}
