"""Entry bundles (C2SP tlog-tiles "Log entries"): 256 consecutive entries, each
prefixed by its length as a big-endian uint16.

The store keeps entries in this form, one row per bundle, so that an append
writes a few rows per thousand entries, and serving ``/tile/entries/N`` is a
read.
"""

from __future__ import annotations

from collections.abc import Iterable

BUNDLE_SIZE = 256
MAX_ENTRY = 0xFFFF
_LENGTH_BYTES = 2


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    parts = []
    for entry in entries:
        parts.append(len(entry).to_bytes(_LENGTH_BYTES, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ``ValueError`` if it is truncated."""
    entries, offset = [], 0
    while offset < len(data):
        end = offset + _LENGTH_BYTES + int.from_bytes(data[offset : offset + _LENGTH_BYTES], "big")
        if end > len(data) or offset + _LENGTH_BYTES > len(data):
            raise ValueError("truncated entry bundle")
        entries.append(data[offset + _LENGTH_BYTES : end])
        offset = end
    return entries
