"""A batch's receipts as one mesh message (pure): the signed checkpoint once, then
each reading's leaf hash, index and inclusion path, so that a hundred receipts
weigh a hundred paths, not a hundred copies of the checkpoint. Each receipt is a
C2SP tlog-proof again on arrival (:func:`unpack`)::

    {"checkpoint": signed note, "receipts": [[leaf hash, index, [hash, …]], …]}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cbor2

from trustmesh.errors import InvalidMeshMessage, InvalidReceipt
from trustmesh.log.tlog_proof import format_tlog_proof, parse_tlog_proof

__all__ = ["pack", "unpack"]

MAX_RECEIPTS = 5_000


def pack(receipts: Iterable[tuple[bytes, str]]) -> list[bytes]:
    """Messages for (leaf hash, tlog-proof) pairs: one per checkpoint they name."""
    groups: dict[str, list[list[Any]]] = {}
    for leaf, text in receipts:
        proof = parse_tlog_proof(text)
        groups.setdefault(proof.checkpoint, []).append([leaf, proof.index, list(proof.hashes)])
    return [cbor2.dumps({"checkpoint": checkpoint, "receipts": items})
            for checkpoint, items in groups.items()]  # fmt: skip


def unpack(data: bytes) -> tuple[str, list[tuple[bytes, str]]]:
    """(the checkpoint's origin, [(leaf hash, tlog-proof text), …]) of a message;
    InvalidMeshMessage if it is not one (the proofs are not checked here)."""
    try:
        document = cbor2.loads(data)
        checkpoint, items = document["checkpoint"], document["receipts"]
        if not isinstance(checkpoint, str) or not isinstance(items, list):
            raise TypeError("a checkpoint (text) and its receipts (an array)")
        if not 0 < len(items) <= MAX_RECEIPTS:
            raise TypeError(f"1 to {MAX_RECEIPTS} receipts")
        pairs = []
        for leaf, index, hashes in items:
            if (
                not isinstance(leaf, bytes)
                or type(index) is not int
                or not isinstance(hashes, list)
            ):
                raise TypeError("a receipt is [leaf hash, index, [hash, …]]")
            pairs.append((leaf, format_tlog_proof(index, hashes, checkpoint)))
        parse_tlog_proof(pairs[0][1])  # the checkpoint's shape, once
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, InvalidReceipt) as exc:
        raise InvalidMeshMessage(f"not a receipts message: {exc}") from None
    return checkpoint.partition("\n")[0], pairs
