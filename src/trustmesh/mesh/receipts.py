"""A batch's receipts as mesh messages (pure): the signed checkpoint once, then
each reading's leaf hash, index and inclusion path, so that a hundred receipts
weigh a hundred paths, not a hundred copies of the checkpoint (a batch too large
for one message takes several). Each receipt is a
C2SP tlog-proof again on arrival (:func:`unpack`: its parts, checked as one)::

    {"checkpoint": signed note, "receipts": [[leaf hash, index, [hash, …]], …]}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cbor2

from trustmesh import _cbor
from trustmesh.errors import InvalidMeshMessage, InvalidReceipt
from trustmesh.log.merkle import HASH_SIZE, are_hashes
from trustmesh.log.tlog_proof import MAX_HASHES, TlogProof, format_tlog_proof, parse_tlog_proof
from trustmesh.mesh.topics import MAX_MESSAGE

__all__ = ["pack", "unpack"]

MAX_RECEIPTS = 5_000
ENVELOPE = 64  # a message's map, keys and heads, at most
ITEM = 64  # a receipt's array, leaf hash, index and heads, at most (its hashes aside)


def pack(receipts: Iterable[tuple[bytes, str]], limit: int = MAX_MESSAGE) -> list[bytes]:
    """Messages for (leaf hash, tlog-proof) pairs: one per checkpoint they name, or
    more, so that each stays within ``limit`` bytes (a topic's largest message)."""
    groups: dict[str, list[list[Any]]] = {}
    decoded: dict[str, bytes] = {}  # (a batch's proofs share most of their hashes)
    for leaf, text in receipts:
        proof = parse_tlog_proof(text, decoded=decoded)
        groups.setdefault(proof.checkpoint, []).append([leaf, proof.index, list(proof.hashes)])
    messages = []
    for checkpoint, items in groups.items():
        room = limit - len(checkpoint.encode()) - ENVELOPE
        part: list[list[Any]] = []
        used = 0
        for item in items:
            size = ITEM + (HASH_SIZE + 2) * len(item[2])  # (at most: CBOR heads included)
            if part and (used + size > room or len(part) == MAX_RECEIPTS):
                messages.append(cbor2.dumps({"checkpoint": checkpoint, "receipts": part}))
                part, used = [], 0
            part.append(item)
            used += size
        messages.append(cbor2.dumps({"checkpoint": checkpoint, "receipts": part}))
    return messages


def unpack(data: bytes) -> tuple[str, list[tuple[bytes, TlogProof]]]:
    """(the checkpoint's origin, [(leaf hash, its tlog-proof), …]) of a message;
    InvalidMeshMessage if it is not one (the proofs are not checked here)."""
    try:
        document = _cbor.loads(data)
        checkpoint, items = document["checkpoint"], document["receipts"]
        if not isinstance(checkpoint, str) or not isinstance(items, list):
            raise TypeError("a checkpoint (text) and its receipts (an array)")
        if not 0 < len(items) <= MAX_RECEIPTS:
            raise TypeError(f"1 to {MAX_RECEIPTS} receipts")
        parse_tlog_proof(format_tlog_proof(0, [], checkpoint))  # the checkpoint's shape, once
        pairs = []
        for leaf, index, hashes in items:
            if (
                not isinstance(leaf, bytes)
                or type(index) is not int
                or not 0 <= index < 1 << 64
                or not isinstance(hashes, list)
                or len(hashes) > MAX_HASHES
                or not are_hashes(hashes)
            ):
                raise TypeError("a receipt is [leaf hash, index, [32-byte hash, …]]")
            pairs.append((leaf, TlogProof(index, tuple(hashes), checkpoint)))
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, InvalidReceipt) as exc:
        raise InvalidMeshMessage(f"not a receipts message: {exc}") from None
    return checkpoint.partition("\n")[0], pairs
