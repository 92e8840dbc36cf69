"""Signature algorithms, public keys, and the one Signer interface.

Two algorithms, both with 64-byte signatures as COSE (RFC 9053 §2) carries them:

- ES256: ECDSA over P-256 with SHA-256, signature raw ``r ‖ s`` (32 bytes each);
  the public key is kept as the 33-byte SEC1 compressed point.
- EdDSA: Ed25519 (RFC 8032), public key 32 bytes.

A :class:`Signer` is anything that can produce such signatures: a software key
(:class:`SoftwareSigner`, loaded from an encrypted keystore) or a key that never
leaves a PKCS#11 token. The rest of trustmesh only ever sees the interface.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from trustmesh.errors import InvalidSignature

SIGNATURE_SIZE = 64
P256_COORDINATE_SIZE = 32
P256_COMPRESSED_SIZE = 33
ED25519_KEY_SIZE = 32

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class Alg(enum.Enum):
    """A signature algorithm, valued by its COSE algorithm identifier (RFC 9053)."""

    ES256 = -7
    EDDSA = -8

    @property
    def label(self) -> str:
        """The name used in COSE registries, JSON output and the CLI."""
        return "ES256" if self is Alg.ES256 else "EdDSA"

    @classmethod
    def from_label(cls, label: str) -> Alg:
        """``"ES256"`` or ``"EdDSA"`` (case-insensitive) to an :class:`Alg`."""
        for alg in cls:
            if alg.label.lower() == label.lower():
                return alg
        raise ValueError(f"unknown algorithm {label!r}: expected ES256 or EdDSA")


@dataclass(frozen=True)
class PublicKey:
    """A device public key: the algorithm and the key bytes in canonical form.

    ``raw`` is the 33-byte compressed point for ES256 and the 32-byte key for
    EdDSA. Construction checks that the bytes are a valid key (a point on the
    curve), so a :class:`PublicKey` can always be used to verify.
    """

    alg: Alg
    raw: bytes
    _verifier: ec.EllipticCurvePublicKey | nacl.signing.VerifyKey = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Build the library key object once: verification is the hot path.
        verifier: ec.EllipticCurvePublicKey | nacl.signing.VerifyKey
        if self.alg is Alg.ES256:
            if len(self.raw) != P256_COMPRESSED_SIZE or self.raw[0] not in (2, 3):
                raise ValueError("a P-256 public key must be a 33-byte compressed point")
            verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.raw)
        else:
            if len(self.raw) != ED25519_KEY_SIZE:
                raise ValueError("an Ed25519 public key must be 32 bytes")
            # Loading through cryptography rejects encodings that are not points.
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
            # PyNaCl (libsodium) verifies Ed25519 about twice as fast as
            # cryptography here; benchmarks/verify.py measures both.
            verifier = nacl.signing.VerifyKey(self.raw)
        object.__setattr__(self, "_verifier", verifier)

    @classmethod
    def from_uncompressed_p256(cls, point: bytes) -> PublicKey:
        """A P-256 key from its SEC1 uncompressed encoding (``04 ‖ x ‖ y``)."""
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        return cls.from_cryptography(key)

    @classmethod
    def from_cryptography(
        cls, key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    ) -> PublicKey:
        """Wrap a ``cryptography`` public key object."""
        if isinstance(key, ed25519.Ed25519PublicKey):
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return cls(Alg.EDDSA, raw)
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"unsupported curve {key.curve.name}: only P-256 is supported")
        raw = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        return cls(Alg.ES256, raw)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check ``signature`` over ``message``; raise :class:`InvalidSignature` if wrong.

        ES256 signatures are raw ``r ‖ s``; the hash (SHA-256) is computed here.
        """
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature(f"signatures are 64 bytes, not {len(signature)}")
        verifier = self._verifier
        if isinstance(verifier, nacl.signing.VerifyKey):
            try:
                verifier.verify(message, signature)
            except nacl.exceptions.BadSignatureError:
                raise InvalidSignature("Ed25519 signature does not verify") from None
            return
        r = int.from_bytes(signature[:P256_COORDINATE_SIZE], "big")
        s = int.from_bytes(signature[P256_COORDINATE_SIZE:], "big")
        try:
            verifier.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
        except _CryptoInvalidSignature:
            raise InvalidSignature("ES256 signature does not verify") from None


@runtime_checkable
class Signer(Protocol):
    """Something that holds a device private key and signs with it.

    Implementations: :class:`SoftwareSigner` (key in memory, from a keystore)
    and :class:`~trustmesh.identity.Pkcs11Signer` (key inside a token).
    """

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``: 64 bytes, ``r ‖ s`` for ES256, RFC 8032 for EdDSA."""
        ...


class SoftwareSigner:
    """A signer whose private key is held in process memory."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        self._private_key = private_key
        self._public_key = PublicKey.from_cryptography(private_key.public_key())

    @classmethod
    def generate(cls, alg: Alg = Alg.ES256) -> SoftwareSigner:
        """A new random key pair (ES256 by default)."""
        if alg is Alg.ES256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, alg: Alg, secret: bytes) -> SoftwareSigner:
        """Rebuild from :meth:`private_bytes` (the P-256 scalar, or the Ed25519 seed)."""
        if len(secret) != 32:
            raise ValueError("a private key is 32 bytes")
        if alg is Alg.ES256:
            return cls(ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1()))
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(secret))

    @property
    def alg(self) -> Alg:
        return self._public_key.alg

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def private_bytes(self) -> bytes:
        """The 32-byte secret; only the keystore should ever call this."""
        key = self._private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        return key.private_numbers().private_value.to_bytes(32, "big")

    def sign(self, message: bytes) -> bytes:
        key = self._private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        r, s = decode_dss_signature(key.sign(message, _ECDSA_SHA256))
        return r.to_bytes(P256_COORDINATE_SIZE, "big") + s.to_bytes(P256_COORDINATE_SIZE, "big")
