"""ECDSA P-256 signatures on C2SP signed notes, and the log's key pair.

C2SP signed-note assigns signature type ``0x02`` to ECDSA as the
transparency-dev witness implements it: the signature is ASN.1 DER over
SHA-256 of the note text, and the key ID is the first four bytes of SHA-256 of
the public key's DER SubjectPublicKeyInfo.

A trustmesh log signs every checkpoint and receipt twice: with its Ed25519 key
(what Go's sumdb, Sigstore and the witness network verify) and with a P-256
key that the Registry holds too, so that the chain can check a checkpoint or a
receipt with the P256VERIFY precompile: that is what makes split views and
broken receipts provable on-chain. Both keys come from one 32-byte seed (the
P-256 scalar is derived with HKDF-SHA256), so a node keeps one secret.

>>> from trustmesh.log.note import sign_note
>>> log_signer = LogSigner.from_seed("example.com/log", bytes(32))
>>> note = sign_note("hello\\n", log_signer.note_signers())
>>> open_note(note, [log_signer.p256.verifier]).text == open_note(note, [log_signer.verifier]).text
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from trustmesh.errors import InvalidCheckpoint
from trustmesh.log.note import (
    KEY_ID_SIZE,
    SIGNATURE_PREFIX,
    LineSigner,
    NoteSigner,
    _check_name,
    open_note,
)

__all__ = [
    "ECDSA_TYPE",
    "LogSigner",
    "P256NoteSigner",
    "P256NoteVerifier",
    "p256_signature",
    "parse_p256_vkey",
]

ECDSA_TYPE = 0x02
_CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_DERIVE_INFO = b"trustmesh.dev/log-key/p256/v1"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@lru_cache(maxsize=1024)
def _public_key(point: bytes) -> ec.EllipticCurvePublicKey:
    """The key of an uncompressed point ``x || y``, parsed once (parsing checks the curve)."""
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + point)


@lru_cache(maxsize=1024)
def _key_id(point: bytes) -> int:
    return int.from_bytes(hashlib.sha256(_spki(_public_key(point))).digest()[:KEY_ID_SIZE], "big")


@dataclass(frozen=True)
class P256NoteVerifier:
    """A P-256 note verifier: a key name and the public point ``x || y`` (64 bytes)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 64:
            raise InvalidCheckpoint("a P-256 public key here is x || y, 64 bytes")
        try:
            self._key()
        except ValueError:
            raise InvalidCheckpoint("not a point on P-256") from None

    def _key(self) -> ec.EllipticCurvePublicKey:
        return _public_key(self.public_key)

    @property
    def key_id(self) -> int:
        return _key_id(self.public_key)

    @property
    def vkey(self) -> str:
        """``<name>+<hex key ID>+<base64(0x02 || DER SPKI)>``, as the witness writes it."""
        encoded = base64.b64encode(bytes([ECDSA_TYPE]) + _spki(self._key())).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self._key().verify(signature, text, _ECDSA_SHA256)
        except (InvalidSignature, ValueError):
            return False
        return True


class P256NoteSigner:
    """Signs notes with a P-256 key (signature type 0x02)."""

    def __init__(self, name: str, private_key: ec.EllipticCurvePrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = private_key
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.verifier = P256NoteVerifier(name, point[1:])
        self._line_start = f"{SIGNATURE_PREFIX}{name} "
        self._key_id = self.verifier.key_id.to_bytes(KEY_ID_SIZE, "big")

    def sign_raw(self, message: bytes) -> bytes:
        """r || s (32 bytes each) of an ECDSA P-256 / SHA-256 signature of
        ``message``: what P256VERIFY takes (with SHA-256 of the message)."""
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def signature_line(self, text: bytes) -> str:
        der = self._key.sign(text, _ECDSA_SHA256)
        signature = self._key_id + der
        return f"{self._line_start}{base64.b64encode(signature).decode()}\n"


class LogSigner(NoteSigner):
    """A log's keys: Ed25519 (the signer itself) and P-256 (``p256``), from one seed.

    ``note_signers()`` names both, so checkpoints and receipts carry both lines.
    """

    def __init__(self, name: str, seed: bytes) -> None:
        super().__init__(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))
        material = HKDF(hashes.SHA256(), 48, salt=None, info=_DERIVE_INFO).derive(seed)
        scalar = int.from_bytes(material, "big") % (_CURVE_ORDER - 1) + 1
        self.p256 = P256NoteSigner(name, ec.derive_private_key(scalar, ec.SECP256R1()))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> LogSigner:
        return cls(name, seed)

    def note_signers(self) -> list[LineSigner]:
        return [self, self.p256]


def p256_signature(note: str | bytes, verifier: P256NoteVerifier) -> tuple[bytes, bytes]:
    """The verified P-256 signature of ``note`` by ``verifier`` as (r, s), 32 bytes each.

    This is what an on-chain proof hands to P256VERIFY.
    """
    parsed = open_note(note, [verifier])
    for signature in parsed.signatures:
        if (signature.name, signature.key_id) == (verifier.name, verifier.key_id):
            try:
                r, s = decode_dss_signature(signature.signature)
            except ValueError:  # pragma: no cover - open_note verified it
                raise InvalidCheckpoint("malformed ECDSA signature") from None
            return r.to_bytes(32, "big"), s.to_bytes(32, "big")
    raise InvalidCheckpoint("no P-256 signature")  # pragma: no cover - open_note found one


def parse_p256_vkey(vkey: str) -> P256NoteVerifier:
    """Parse ``<name>+<hex key ID>+<base64(0x02 || DER SPKI)>``."""
    name, plus, rest = vkey.partition("+")
    hex_id, plus2, encoded = rest.partition("+")
    try:
        raw = base64.b64decode(encoded, validate=True)
        declared = int(hex_id, 16)
        if not (plus and plus2) or len(hex_id) != 8 or not raw or raw[0] != ECDSA_TYPE:
            raise ValueError
        key = serialization.load_der_public_key(raw[1:])
    except (ValueError, binascii.Error):
        raise InvalidCheckpoint(f"malformed P-256 verifier key {vkey!r}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidCheckpoint(f"verifier key {vkey!r} is not a P-256 key")
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    verifier = P256NoteVerifier(name, point[1:])
    if verifier.key_id != declared:
        raise InvalidCheckpoint(f"verifier key {vkey!r}: key ID does not match the key")
    return verifier
