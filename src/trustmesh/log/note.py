"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures.

A note is UTF-8 text ending in a newline, a blank line, then signature lines::

    — <key name> base64(4-byte key ID || 64-byte Ed25519 signature)

with ``key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4]``. A
verifier key is written ``<name>+<hex key ID>+<base64(0x01 || public key)>``,
as the Go checksum database, Sigstore and the witness network write it.

Verification follows the spec: signatures from unknown keys are ignored; a
signature from a known key (name *and* ID match) must verify, or the whole note
is rejected; and at least one known key must have signed.

>>> signer = NoteSigner.generate("example.com/log")
>>> note = sign_note("hello\\n", [signer])
>>> open_note(note, [signer.verifier]).text
'hello\\n'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from trustmesh.errors import InvalidCheckpoint

__all__ = [
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "open_note",
    "parse_note",
    "sign_note",
]

ED25519_TYPE = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
KEY_ID_SIZE = 4
ED25519_SIGNATURE_SIZE = 64
MAX_NOTE_SIZE = 128 * 1024  # ample for 16 signatures, even post-quantum ones
MAX_SIGNATURES = 64


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # control characters but the newline


@lru_cache(maxsize=1024)
def key_id(name: str, public_key: bytes, signature_type: int = ED25519_TYPE) -> int:
    """``SHA-256(name || 0x0A || type || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()
    return int.from_bytes(digest[:KEY_ID_SIZE], "big")


class LineSigner(Protocol):
    """Anything that writes one signature line of a note (Ed25519 or P-256)."""

    name: str

    def signature_line(self, text: bytes) -> str: ...


class LineVerifier(Protocol):
    """Anything that checks the signatures of one key (name and key ID) on a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise InvalidCheckpoint(f"invalid key name {name!r}: non-empty, no spaces, no '+'")


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 note verifier: a key name and its public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise InvalidCheckpoint("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string ``<name>+<hex key ID>+<base64 key>``."""
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string; :class:`InvalidCheckpoint` if malformed."""
        name, plus, rest = vkey.partition("+")
        hex_id, plus2, encoded = rest.partition("+")
        if not (plus and plus2) or len(hex_id) != 8:
            raise InvalidCheckpoint(f"malformed verifier key {vkey!r}")
        try:
            declared = int(hex_id, 16)
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidCheckpoint(f"malformed verifier key {vkey!r}") from None
        if len(key) != 33 or key[0] != ED25519_TYPE:
            raise InvalidCheckpoint(f"verifier key {vkey!r} is not an Ed25519 key")
        verifier = cls(name, key[1:])
        if verifier.key_id != declared:
            raise InvalidCheckpoint(f"verifier key {vkey!r}: key ID does not match the key")
        return verifier

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            _verify_key(self.public_key).verify(text, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


@lru_cache(maxsize=1024)
def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey:
    """A parsed Ed25519 key (libsodium's, faster than OpenSSL's here), kept for reuse."""
    return nacl.signing.VerifyKey(public_key)


class NoteSigner:
    """Signs notes with an Ed25519 key under a key name (for a log: its origin)."""

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = NoteVerifier(name, raw)
        # Signing goes through libsodium: the same deterministic signatures, sooner.
        self._signing_key = nacl.signing.SigningKey(self.seed())
        self._line_start = f"{SIGNATURE_PREFIX}{name} "
        self._key_id = self.verifier.key_id.to_bytes(KEY_ID_SIZE, "big")

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(name, ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        return cls(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a Go-style signer key ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01||seed)>``."""
        prefix, _, rest = skey.partition("+KEY+")
        name, _, rest = rest.partition("+")
        hex_id, _, encoded = rest.partition("+")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidCheckpoint("malformed signer key") from None
        if prefix != "PRIVATE" or len(key) != 33 or key[0] != ED25519_TYPE:
            raise InvalidCheckpoint("malformed signer key")
        signer = cls.from_seed(name, key[1:])
        if f"{signer.verifier.key_id:08x}" != hex_id:
            raise InvalidCheckpoint("signer key: key ID does not match the key")
        return signer

    def seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def note_signers(self) -> Sequence[LineSigner]:
        """The keys that sign this signer's notes: itself (a log adds its P-256 key)."""
        return [self]

    def signature_line(self, text: bytes) -> str:
        signature = self._key_id + self._signing_key.sign(text).signature
        return f"{self._line_start}{base64.b64encode(signature).decode()}\n"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed note: its text (with the final newline) and its signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]


def sign_note(text: str, signers: Sequence[LineSigner]) -> str:
    """The signed note of ``text`` (which must end in a newline) by ``signers``."""
    _check_text(text)
    if not signers:
        raise ValueError("a note needs at least one signer")
    data = text.encode()
    return text + "\n" + "".join(signer.signature_line(data) for signer in signers)


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into text and signatures, without verifying them."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise InvalidCheckpoint("note too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCheckpoint("a note must be UTF-8") from None
    if len(note.encode()) > MAX_NOTE_SIZE:
        raise InvalidCheckpoint("note too large")
    if any(c < " " and c != "\n" for c in note):
        raise InvalidCheckpoint("a note must not contain control characters")
    # The text ends at the last blank line; signature lines follow it.
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise InvalidCheckpoint("malformed note: no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidCheckpoint("too many signatures")
    return Note(text, tuple(_parse_signature(line) for line in lines))


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise InvalidCheckpoint(f"malformed signature line {line!r}")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not name or "+" in name or any(c.isspace() for c in name):
        raise InvalidCheckpoint(f"malformed signature line {line!r}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidCheckpoint(f"malformed signature in {line!r}") from None
    if len(raw) <= KEY_ID_SIZE:
        raise InvalidCheckpoint(f"signature too short in {line!r}")
    return NoteSignature(name, int.from_bytes(raw[:KEY_ID_SIZE], "big"), raw[KEY_ID_SIZE:])


def open_note(note: str | bytes, verifiers: Iterable[LineVerifier]) -> Note:
    """Parse ``note`` and verify it against ``verifiers``, per C2SP signed-note.

    Raises :class:`InvalidCheckpoint` if a known key's signature fails, or if
    no known key signed.
    """
    parsed = parse_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    text = parsed.text.encode()
    verified = 0
    for signature in parsed.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue  # unknown keys are ignored
        if not verifier.verify(text, signature.signature):
            raise InvalidCheckpoint(f"signature by {signature.name} does not verify")
        verified += 1
    if not verified:
        raise InvalidCheckpoint("no signature from a known key")
    return parsed


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if _CONTROL.search(text):
        raise ValueError("note text must not contain control characters")
