"""The did:key method (W3C CCG did-method-key), for P-256 and Ed25519 keys.

    did:key:<multibase base58btc of (multicodec varint ‖ public key bytes)>

- P-256: multicodec ``p256-pub`` (0x1200, varint ``80 24``) + 33-byte compressed
  point, giving ``did:key:zDn…``;
- Ed25519: multicodec ``ed25519-pub`` (0xed, varint ``ed 01``) + 32 bytes,
  giving ``did:key:z6Mk…``.

A did:key is self-certifying: the DID *is* the public key, so decoding it needs
no resolver, no network and no registry.
"""

from __future__ import annotations

import functools
from typing import NewType

import base58

from trustmesh.errors import InvalidDid
from trustmesh.identity._keys import Alg, PublicKey

Did = NewType("Did", str)
"""A ``did:key`` string, as produced by :func:`did_from_key` or checked by :func:`key_from_did`."""

DID_KEY_PREFIX = "did:key:"
MULTIBASE_BASE58BTC = "z"
MULTICODEC_P256_PUB = b"\x80\x24"  # varint of 0x1200
MULTICODEC_ED25519_PUB = b"\xed\x01"  # varint of 0xed
# Key types a did:key may name that trustmesh refuses, so the error can say which.
_UNSUPPORTED_MULTICODECS = {
    b"\x81\x24": "P-384",
    b"\x82\x24": "P-521",
    b"\xe7\x01": "secp256k1",
    b"\xec\x01": "X25519",
}
# The longest DID we support is a P-256 one (~57 characters); anything far
# longer is refused before base58 decoding, whose cost grows quadratically.
MAX_DID_LENGTH = 128

_MULTICODEC = {Alg.ES256: MULTICODEC_P256_PUB, Alg.EDDSA: MULTICODEC_ED25519_PUB}


def did_from_key(key: PublicKey) -> Did:
    """The did:key naming ``key``.

    >>> from trustmesh.identity import SoftwareSigner
    >>> did_from_key(SoftwareSigner.generate().public_key).startswith("did:key:zDn")
    True
    """
    multikey = _MULTICODEC[key.alg] + key.raw
    return Did(DID_KEY_PREFIX + MULTIBASE_BASE58BTC + base58.b58encode(multikey).decode("ascii"))


@functools.lru_cache(maxsize=65536)
def key_from_did(did: str) -> PublicKey:
    """The public key that ``did`` names; :class:`InvalidDid` if it names none we support.

    Only the canonical encoding is accepted (re-encoding the key must give
    back the same string), so one key has exactly one DID. Results are cached:
    devices sign many readings under one DID.
    """
    if not isinstance(did, str):
        raise InvalidDid(f"a DID is a string, not {type(did).__name__}")
    if len(did) > MAX_DID_LENGTH:
        raise InvalidDid(f"DID too long ({len(did)} characters)")
    if not did.startswith(DID_KEY_PREFIX):
        raise InvalidDid(f"not a did:key: {did!r}")
    multibase = did[len(DID_KEY_PREFIX) :]
    if not multibase.startswith(MULTIBASE_BASE58BTC):
        raise InvalidDid(f"did:key must use multibase base58btc ('z' prefix): {did!r}")
    try:
        multikey = base58.b58decode(multibase[1:].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidDid(f"did:key is not valid base58btc: {did!r}") from None
    codec, raw = multikey[:2], multikey[2:]
    if codec == MULTICODEC_P256_PUB:
        alg = Alg.ES256
    elif codec == MULTICODEC_ED25519_PUB:
        alg = Alg.EDDSA
    elif codec in _UNSUPPORTED_MULTICODECS:
        raise InvalidDid(
            f"unsupported did:key key type {_UNSUPPORTED_MULTICODECS[codec]}: "
            "only P-256 and Ed25519 are supported"
        )
    else:
        raise InvalidDid(f"did:key names an unknown multicodec 0x{codec.hex()}: {did!r}")
    try:
        key = PublicKey(alg, raw)
    except ValueError as exc:
        raise InvalidDid(f"did:key holds no valid {alg.label} public key: {exc}") from None
    if did_from_key(key) != did:
        raise InvalidDid(f"did:key is not in canonical form: {did!r}")
    return key
