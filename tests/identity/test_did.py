"""did:key encode/decode: the did-method-key specification's own vectors, round
trips, and every malformed or unsupported DID."""

from __future__ import annotations

import base64
from typing import Any

import base58
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import load_vector
from trustmesh.errors import InvalidDid
from trustmesh.identity import Alg, PublicKey, SoftwareSigner, did_from_key, key_from_did

NIST = load_vector("didkey-nist-curves.json")
ED25519 = load_vector("didkey-ed25519-x25519.json")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_key(method: dict[str, Any]) -> PublicKey:
    """The key a vector states, as a JWK (JsonWebKey2020) or base58 (P256Key2021)."""
    if "publicKeyJwk" in method:
        jwk = method["publicKeyJwk"]
        assert jwk["crv"] == "P-256"
        return PublicKey.from_uncompressed_p256(b"\x04" + _b64url(jwk["x"]) + _b64url(jwk["y"]))
    return PublicKey(Alg.ES256, base58.b58decode(method["publicKeyBase58"]))


def _private_scalar(method: dict[str, Any]) -> bytes:
    if "privateKeyJwk" in method:
        return _b64url(method["privateKeyJwk"]["d"])
    return base58.b58decode(method["privateKeyBase58"])


# The P-256 DIDs start zDn; the file also holds P-384 (z82) and P-521 (z2J9) ones.
P256_VECTORS = {did: v for did, v in NIST.items() if did.startswith("did:key:zDn")}
OTHER_NIST = {did: v for did, v in NIST.items() if did not in P256_VECTORS}


def test_the_vector_files_hold_what_we_expect() -> None:
    assert len(P256_VECTORS) == 3
    assert {v["verificationMethod"]["publicKeyJwk"]["crv"] for v in OTHER_NIST.values()} == {
        "P-384",
        "P-521",
    }
    assert len(ED25519) == 5


@pytest.mark.parametrize("did", sorted(P256_VECTORS))
def test_p256_vectors_decode_to_the_stated_key_and_encode_back(did: str) -> None:
    expected = _public_key(P256_VECTORS[did]["verificationMethod"])
    assert key_from_did(did) == expected
    assert did_from_key(expected) == did
    assert did.startswith("did:key:zDn")


@pytest.mark.parametrize("did", sorted(P256_VECTORS))
def test_p256_private_key_in_vector_gives_the_did(did: str) -> None:
    scalar = _private_scalar(P256_VECTORS[did]["verificationMethod"])
    signer = SoftwareSigner(ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1()))
    assert did_from_key(signer.public_key) == did


@pytest.mark.parametrize("did", sorted(ED25519))
def test_ed25519_vectors_decode_to_the_base58_key_and_encode_back(did: str) -> None:
    pair = ED25519[did]["verificationKeyPair"]
    if "publicKeyJwk" in pair:
        raw = _b64url(pair["publicKeyJwk"]["x"])
    else:
        raw = base58.b58decode(pair["publicKeyBase58"])
    assert key_from_did(did) == PublicKey(Alg.EDDSA, raw)
    assert did_from_key(PublicKey(Alg.EDDSA, raw)) == did
    assert did.startswith("did:key:z6Mk")


def _ed25519_seed(vector: dict[str, Any]) -> bytes:
    if "seed" in vector:
        return bytes.fromhex(vector["seed"])
    return _b64url(vector["verificationKeyPair"]["privateKeyJwk"]["d"])


@pytest.mark.parametrize(
    "did", sorted(d for d, v in ED25519.items() if "seed" in v or "privateKeyJwk" in str(v))
)
def test_ed25519_seed_in_vector_gives_the_did(did: str) -> None:
    seed = _ed25519_seed(ED25519[did])
    assert did_from_key(SoftwareSigner.from_private_bytes(Alg.EDDSA, seed).public_key) == did


@pytest.mark.parametrize("did", sorted(OTHER_NIST))
def test_p384_and_p521_are_refused_as_unsupported(did: str) -> None:
    with pytest.raises(InvalidDid, match="unsupported did:key key type P-(384|521)"):
        key_from_did(did)


@given(alg=st.sampled_from(list(Alg)), data=st.data())
def test_round_trip_for_random_keys(alg: Alg, data: st.DataObject) -> None:
    secret = data.draw(st.binary(min_size=32, max_size=32))
    try:
        signer = SoftwareSigner.from_private_bytes(alg, secret)
    except ValueError:  # a P-256 scalar of 0 or ≥ n
        return
    did = did_from_key(signer.public_key)
    assert key_from_did(did) == signer.public_key


P256_DID = sorted(P256_VECTORS)[0]
ED_DID = sorted(ED25519)[0]


def _multikey(did: str) -> bytes:
    return base58.b58decode(did.removeprefix("did:key:z"))


def _did(multikey: bytes) -> str:
    return "did:key:z" + base58.b58encode(multikey).decode()


@pytest.mark.parametrize(
    ("did", "message"),
    [
        ("", "not a did:key"),
        ("did:web:example.com", "not a did:key"),
        ("DID:KEY:" + P256_DID[8:], "not a did:key"),
        ("did:key:", "multibase base58btc"),
        ("did:key:" + "m" + P256_DID[9:], "multibase base58btc"),
        ("did:key:z0OIl", "not valid base58btc"),
        ("did:key:zé", "not valid base58btc"),
        (P256_DID + "#" + P256_DID[8:], "not valid base58btc"),
        ("did:key:z" + "1" * 200, "too long"),
        ("did:key:z", "unknown multicodec"),
        (_did(b"\x12\x00" + bytes(33)), "unknown multicodec"),
        (_did(b"\xe7\x01" + bytes(33)), "unsupported did:key key type secp256k1"),
        (_did(b"\xec\x01" + bytes(32)), "unsupported did:key key type X25519"),
        (_did(_multikey(P256_DID)[:-1]), "no valid ES256 public key"),
        (_did(_multikey(P256_DID) + b"\x00"), "no valid ES256 public key"),
        (_did(b"\x80\x24\x04" + bytes(32)), "no valid ES256 public key"),
        (_did(b"\x80\x24\x02" + b"\xff" * 32), "no valid ES256 public key"),
        (_did(_multikey(ED_DID)[:-1]), "no valid EdDSA public key"),
        ("did:key:z1" + P256_DID[9:], "unknown multicodec"),
    ],
)
def test_malformed_dids_are_refused_with_the_reason(did: str, message: str) -> None:
    with pytest.raises(InvalidDid, match=message):
        key_from_did(did)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(InvalidDid, match="a DID is a string"):
        key_from_did(b"did:key:z" + P256_DID[9:].encode())  # type: ignore[arg-type, unused-ignore]


def test_uncompressed_p256_multikey_is_refused() -> None:
    point = key_from_did(P256_DID)
    uncompressed = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), point.raw
    ).public_numbers()
    raw = b"\x04" + uncompressed.x.to_bytes(32, "big") + uncompressed.y.to_bytes(32, "big")
    with pytest.raises(InvalidDid, match="no valid ES256 public key"):
        key_from_did(_did(b"\x80\x24" + raw))


@given(st.text(max_size=80))
def test_any_string_either_decodes_or_raises_invalid_did(text: str) -> None:
    try:
        key = key_from_did(text)
    except InvalidDid:
        return
    assert did_from_key(key) == text
