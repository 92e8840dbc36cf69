"""RFC 8742 CBOR sequences of readings, as HTTP bodies and MQTT messages bring them."""

from __future__ import annotations

import io
from typing import Any

import cbor2

from trustmesh._problems import Problem

MAX_SEQ_ITEMS = 5_000


def split_cbor_sequence(body: bytes) -> tuple[list[bytes], list[Any]]:
    """The items of a CBOR sequence, each as its exact bytes and as decoded (each
    item is decoded once: to find where it ends, and for the reading parser)."""
    stream = io.BytesIO(body)
    decoder = cbor2.CBORDecoder(stream)
    items: list[bytes] = []
    decoded: list[Any] = []
    start = 0
    while start < len(body):
        if len(items) == MAX_SEQ_ITEMS:
            raise Problem("oversized", f"at most {MAX_SEQ_ITEMS} readings per request")
        try:
            decoded.append(decoder.decode())
        except (cbor2.CBORError, ValueError, RecursionError, MemoryError) as exc:
            raise Problem("bad-cbor", f"item {len(items)} of the sequence: {exc}") from None
        end = stream.tell()
        items.append(body[start:end])
        start = end
    if not items:
        raise Problem("bad-request", "an empty sequence")
    return items, decoded
