"""C2SP tlog-proof (c2sp.org/tlog-proof): an entry's index, its RFC 9162
inclusion proof and the signed checkpoint of the tree it is in, as one text::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <decimal>
    <base64 hash, from the leaf's sibling up to the root's child>
    …
    <empty line>
    <the signed checkpoint, verbatim>

This module reads and writes the format only; :mod:`trustmesh.log.receipt`
checks one against a log's key and an entry. Parsing is strict where the spec
is: the header exactly, an ``extra`` line only as the second line, the index in
decimal with no leading zeroes, every hash canonical base64 of 32 bytes, and an
empty line before the checkpoint. Whatever else is wrong is refused with
:class:`~trustmesh.errors.InvalidReceipt` naming the line.

>>> note = "example.com/log\\n1\\n" + "A" * 43 + "=\\n\\n— example.com/log AAAA\\n"
>>> proof = TlogProof(0, (), note)
>>> parse_tlog_proof(proof.text()) == proof
True
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from trustmesh.errors import InvalidReceipt
from trustmesh.log.merkle import HASH_SIZE

__all__ = ["HEADER", "MAX_PROOF_SIZE", "TlogProof", "format_tlog_proof", "parse_tlog_proof"]

HEADER = "c2sp.org/tlog-proof@v1"
EXTRA_PREFIX = "extra "
INDEX_PREFIX = "index "
MAX_HASHES = 64  # an inclusion proof in a tree of 2^64 leaves has at most 64 hashes
MAX_INDEX_DIGITS = 20  # 2^64 - 1 has 20 digits
MAX_PROOF_SIZE = 256 * 1024  # the hashes, and a checkpoint with room for many cosignatures


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof. ``checkpoint`` is the signed note, exactly as it was
    in the text; ``extra`` is unauthenticated (the spec: never trust it)."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def text(self) -> str:
        return format_tlog_proof(self.index, self.hashes, self.checkpoint, self.extra)


def format_tlog_proof(
    index: int,
    hashes: Iterable[bytes],
    checkpoint: str,
    extra: bytes | None = None,
    *,
    encoded: dict[bytes, str] | None = None,
) -> str:
    """The tlog-proof text of ``index``, its inclusion ``hashes`` and the signed
    ``checkpoint`` (taken verbatim: it must end in a newline). ``encoded``: hashes
    written already, and their lines (a batch's proofs share most of theirs)."""
    if index < 0:
        raise ValueError("an index is not negative")
    if not checkpoint.endswith("\n"):
        raise ValueError("a signed checkpoint ends with a newline")
    lines = [HEADER]
    if extra is not None:
        lines.append(EXTRA_PREFIX + base64.b64encode(extra).decode())
    lines.append(f"{INDEX_PREFIX}{index}")
    for digest in hashes:
        line = encoded.get(digest) if encoded is not None else None
        if line is None:
            if len(digest) != HASH_SIZE:
                raise ValueError("an inclusion proof holds 32-byte hashes")
            line = base64.b64encode(digest).decode()
            if encoded is not None:
                encoded[digest] = line
        lines.append(line)
    return "\n".join(lines) + "\n\n" + checkpoint


def parse_tlog_proof(text: str | bytes, *, decoded: dict[str, bytes] | None = None) -> TlogProof:
    """Parse a tlog-proof (without checking its signature or its proof).
    ``decoded``: hash lines read already, and their hashes (a batch's proofs share
    most of theirs): each line is decoded and checked once, and added here."""
    if isinstance(text, bytes):
        if len(text) > MAX_PROOF_SIZE:
            raise InvalidReceipt(f"a tlog-proof is at most {MAX_PROOF_SIZE} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidReceipt("a tlog-proof is UTF-8 text") from None
    if len(text) > MAX_PROOF_SIZE:
        raise InvalidReceipt(f"a tlog-proof is at most {MAX_PROOF_SIZE} bytes")
    if text.partition("\n")[0] != HEADER:
        raise InvalidReceipt(f"a tlog-proof starts with the line {HEADER!r}")
    head, blank, checkpoint = text.partition("\n\n")
    if not blank:
        raise InvalidReceipt("a tlog-proof has an empty line before its checkpoint")
    lines = head.split("\n")
    position = 1
    extra = None
    if position < len(lines) and lines[position].startswith(EXTRA_PREFIX):
        extra = _base64(lines[position][len(EXTRA_PREFIX) :], "the extra data", None)
        position += 1
    if position == len(lines) or not lines[position].startswith(INDEX_PREFIX):
        raise InvalidReceipt("a tlog-proof names its index on the line after its header")
    index = _decimal(lines[position][len(INDEX_PREFIX) :])
    hashes = lines[position + 1 :]
    if len(hashes) > MAX_HASHES:
        raise InvalidReceipt(f"an inclusion proof has at most {MAX_HASHES} hashes")
    if decoded is None:
        path = tuple(_base64(line, f"hash {n}", HASH_SIZE) for n, line in enumerate(hashes))
    else:
        path = tuple(_hash(line, n, decoded) for n, line in enumerate(hashes))
    if not checkpoint.endswith("\n"):
        raise InvalidReceipt("the checkpoint of a tlog-proof ends with a newline")
    return TlogProof(index, path, checkpoint, extra)


def _hash(line: str, n: int, decoded: dict[str, bytes]) -> bytes:
    digest = decoded.get(line)
    if digest is None:
        digest = decoded[line] = _base64(line, f"hash {n}", HASH_SIZE)
    return digest


def _decimal(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or (text != "0" and text.startswith("0")):
        raise InvalidReceipt(f"index {text!r} is not a decimal without leading zeroes")
    if len(text) > MAX_INDEX_DIGITS or int(text) >= 1 << 64:
        raise InvalidReceipt(f"index {text} is beyond 2^64 - 1")
    return int(text)


def _base64(text: str, what: str, size: int | None) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidReceipt(f"{what} is not base64") from None
    if base64.b64encode(data).decode() != text:  # RFC 4648 §3.5: canonical only
        raise InvalidReceipt(f"{what} is not canonical base64")
    if size is not None and len(data) != size:
        raise InvalidReceipt(f"{what} is {len(data)} bytes, not {size}")
    return data
