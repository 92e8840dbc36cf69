"""RFC 8742 CBOR sequences: split one into its items (shared by the node's HTTP
and MQTT ingest and the mesh's validators)."""

from __future__ import annotations

import io
from typing import Any

import cbor2

from trustmesh._cbor import decode_next
from trustmesh.errors import Error


class InvalidSequence(Error):
    """Not a CBOR sequence of at most the items allowed: ``kind`` says how
    ("oversized", "bad-cbor" or "empty")."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def split_sequence(body: bytes, max_items: int) -> tuple[list[bytes], list[Any]]:
    """The items of a CBOR sequence, each as its exact bytes and as decoded (each
    item is decoded once: to find where it ends, and for the reading parser)."""
    stream = io.BytesIO(body)
    decoder = cbor2.CBORDecoder(stream)
    items: list[bytes] = []
    decoded: list[Any] = []
    start = 0
    while start < len(body):
        if len(items) == max_items:
            raise InvalidSequence("oversized", f"at most {max_items} items in a sequence")
        try:
            decoded.append(decode_next(decoder))
        except cbor2.CBORError as exc:
            raise InvalidSequence("bad-cbor", f"item {len(items)} of the sequence: {exc}") from None
        end = stream.tell()
        items.append(body[start:end])
        start = end
    if not items:
        raise InvalidSequence("empty", "an empty sequence")
    return items, decoded
