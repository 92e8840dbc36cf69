"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): a log's signed tree head.

The note text is the origin, the tree size in decimal, and the base64 root
hash, one per line, then optional extension lines::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

signed as a C2SP signed note (:mod:`trustmesh.log.note`) by the log's key,
whose name is the origin.

>>> from trustmesh.log.note import NoteSigner
>>> signer = NoteSigner.generate("example.com/log")
>>> note = sign_checkpoint(Checkpoint("example.com/log", 0, bytes(32)), signer)
>>> open_checkpoint(note, signer.verifier).size
0
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from trustmesh.errors import InvalidCheckpoint
from trustmesh.log.merkle import HASH_SIZE
from trustmesh.log.note import LineVerifier, NoteSigner, open_note, sign_note

__all__ = ["Checkpoint", "open_checkpoint", "parse_checkpoint_text", "sign_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise InvalidCheckpoint(f"invalid origin {self.origin!r}")
        if self.size < 0:
            raise InvalidCheckpoint("tree size must not be negative")
        if len(self.root) != HASH_SIZE:
            raise InvalidCheckpoint("root hash must be 32 bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise InvalidCheckpoint("extension lines must be non-empty single lines")

    def text(self) -> str:
        """The note text: origin, size, base64 root, extensions, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(line + "\n" for line in (*lines, *self.extensions))


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint body (the note text); strict, per the spec."""
    if not text.endswith("\n"):
        raise InvalidCheckpoint("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise InvalidCheckpoint("a checkpoint has at least three lines")
    origin, size, root, *extensions = lines
    if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise InvalidCheckpoint(f"tree size {size!r} is not a decimal without leading zeroes")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidCheckpoint("root hash is not base64") from None
    if base64.b64encode(root_hash).decode() != root:
        raise InvalidCheckpoint("root hash is not in canonical base64")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note."""
    if signer.name != checkpoint.origin:
        raise ValueError("the log's key name must be its origin")
    return sign_note(checkpoint.text(), signer.note_signers())


def open_checkpoint(
    note: str | bytes, verifier: LineVerifier, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint with the log's key and parse it.

    ``origin``, when given, must match: a checkpoint of another log, even one
    signed by this key, is refused. (trustmesh logs use their origin as key
    name; other logs, such as sum.golang.org, need not.)
    """
    checkpoint = parse_checkpoint_text(open_note(note, [verifier]).text)
    if origin is not None and checkpoint.origin != origin:
        raise InvalidCheckpoint(f"checkpoint of {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
