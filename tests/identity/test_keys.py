"""Signature verification against Wycheproof, and the software signer."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import load_vector
from trustmesh.errors import InvalidSignature
from trustmesh.identity import Alg, PublicKey, Signer, SoftwareSigner

ECDSA = load_vector("wycheproof-ecdsa_secp256r1_sha256_p1363_test.json")
EDDSA = load_vector("wycheproof-ed25519_test.json")


def _cases(document: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(group, test) for group in document["testGroups"] for test in group["tests"]]


def _ids(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    return [f"tc{test['tcId']}-{test['result']}" for _, test in cases]


ECDSA_CASES = _cases(ECDSA)
EDDSA_CASES = _cases(EDDSA)


def test_vectors_are_all_there() -> None:
    assert len(ECDSA_CASES) == ECDSA["numberOfTests"]
    assert len(EDDSA_CASES) == EDDSA["numberOfTests"]


@pytest.mark.parametrize(("group", "test"), ECDSA_CASES, ids=_ids(ECDSA_CASES))
def test_wycheproof_ecdsa_p256_p1363(group: dict[str, Any], test: dict[str, Any]) -> None:
    key = PublicKey.from_uncompressed_p256(bytes.fromhex(group["publicKey"]["uncompressed"]))
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    _check(key, message, signature, test["result"])


@pytest.mark.parametrize(("group", "test"), EDDSA_CASES, ids=_ids(EDDSA_CASES))
def test_wycheproof_ed25519(group: dict[str, Any], test: dict[str, Any]) -> None:
    key = PublicKey(Alg.EDDSA, bytes.fromhex(group["publicKey"]["pk"]))
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    _check(key, message, signature, test["result"])


def _check(key: PublicKey, message: bytes, signature: bytes, result: str) -> None:
    if result == "valid":
        key.verify(message, signature)
    elif result == "invalid":
        with pytest.raises(InvalidSignature):
            key.verify(message, signature)
    else:  # "acceptable": either answer is allowed, but only these two
        with contextlib.suppress(InvalidSignature):
            key.verify(message, signature)


@pytest.mark.parametrize("alg", list(Alg))
def test_software_signer_implements_signer(alg: Alg) -> None:
    signer = SoftwareSigner.generate(alg)
    assert isinstance(signer, Signer)
    assert signer.alg is alg
    signature = signer.sign(b"reading")
    assert len(signature) == 64
    signer.public_key.verify(b"reading", signature)


@pytest.mark.parametrize("alg", list(Alg))
def test_private_bytes_round_trip(alg: Alg) -> None:
    signer = SoftwareSigner.generate(alg)
    again = SoftwareSigner.from_private_bytes(alg, signer.private_bytes())
    assert again.public_key == signer.public_key


@given(
    alg=st.sampled_from(list(Alg)),
    message=st.binary(max_size=300),
    position=st.integers(min_value=0, max_value=511),
)
def test_any_flipped_signature_bit_fails(alg: Alg, message: bytes, position: int) -> None:
    signer = _SIGNERS[alg]
    signature = bytearray(signer.sign(message))
    signature[position // 8] ^= 1 << (position % 8)
    with pytest.raises(InvalidSignature):
        signer.public_key.verify(message, bytes(signature))


_SIGNERS = {alg: SoftwareSigner.generate(alg) for alg in Alg}


@pytest.mark.parametrize("alg", list(Alg))
@pytest.mark.parametrize("size", [0, 63, 65, 128])
def test_wrong_signature_length_fails(alg: Alg, size: int) -> None:
    with pytest.raises(InvalidSignature, match="64 bytes"):
        _SIGNERS[alg].public_key.verify(b"m", bytes(size))


@pytest.mark.parametrize(
    ("alg", "raw"),
    [
        (Alg.ES256, bytes(33)),
        (Alg.ES256, b"\x04" + bytes(32)),
        (Alg.ES256, b"\x02" + b"\xff" * 32),
        (Alg.ES256, bytes(65)),
        (Alg.EDDSA, bytes(31)),
        (Alg.EDDSA, bytes(33)),
    ],
)
def test_invalid_public_keys_are_refused(alg: Alg, raw: bytes) -> None:
    with pytest.raises(ValueError, match="public key|point|invalid|Invalid"):
        PublicKey(alg, raw)


def test_alg_labels() -> None:
    assert Alg.from_label("es256") is Alg.ES256
    assert Alg.from_label("EdDSA") is Alg.EDDSA
    with pytest.raises(ValueError, match="unknown algorithm"):
        Alg.from_label("RS256")
