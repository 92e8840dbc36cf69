"""P256VERIFY (EIP-7951) gives the answers of `cryptography` on Wycheproof's
vectors: in the precompile function, on the embedded chain, and on anvil."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from web3 import Web3

from tests.conftest import load_vector
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.embedded._p256verify import N, P, p256_verify
from trustmesh.identity import SoftwareSigner
from trustmesh.identity._keys import Alg

PRECOMPILE = "0x" + "00" * 18 + "0100"
WYCHEPROOF = load_vector("wycheproof-ecdsa_secp256r1_sha256_p1363_test.json")


def _cases() -> list[tuple[bytes, bool]]:
    """(precompile input, expected answer) for every 64-byte Wycheproof signature."""
    cases = []
    for group in WYCHEPROOF["testGroups"]:
        point = bytes.fromhex(group["publicKey"]["uncompressed"])[1:]
        for test in group["tests"]:
            signature = bytes.fromhex(test["sig"])
            if len(signature) != 64 or test["result"] == "acceptable":
                continue  # not expressible as (r, s) words, or either answer allowed
            digest = hashlib.sha256(bytes.fromhex(test["msg"])).digest()
            cases.append((digest + signature + point, test["result"] == "valid"))
    return cases


CASES = _cases()


def _our_verdict(data: bytes) -> bool:
    """What `cryptography` says of the same (prehashed) signature."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + data[96:160])
    r, s = int.from_bytes(data[32:64], "big"), int.from_bytes(data[64:96], "big")
    try:
        key.verify(encode_dss_signature(r, s), data[:32], ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def test_wycheproof_cases_are_there() -> None:
    assert sum(valid for _, valid in CASES) > 20
    assert sum(not valid for _, valid in CASES) > 50


def test_precompile_function_matches_wycheproof_and_cryptography() -> None:
    for data, valid in CASES:
        assert p256_verify(data) is valid
        assert _our_verdict(data) is valid


def _edge_cases() -> list[tuple[str, bytes, bool]]:
    signer = SoftwareSigner.generate(Alg.ES256)
    message = b"trustmesh"
    digest = hashlib.sha256(message).digest()
    signature = signer.sign(message)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    numbers = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), signer.public_key.raw
    ).public_numbers()
    point = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")

    def word(value: int) -> bytes:
        return value.to_bytes(32, "big")

    good = digest + signature + point
    return [
        ("valid", good, True),
        ("high s accepted", digest + word(r) + word(N - s) + point, True),
        ("one byte short", good[:-1], False),
        ("one byte long", good + b"\x00", False),
        ("empty", b"", False),
        ("r = 0", digest + word(0) + word(s) + point, False),
        ("s = 0", digest + word(r) + word(0) + point, False),
        ("r = n", digest + word(N) + word(s) + point, False),
        ("s = n", digest + word(r) + word(N) + point, False),
        ("point (0, 0)", digest + signature + bytes(64), False),
        ("x = p", digest + signature + word(P) + point[32:], False),
        (
            "off the curve",
            digest + signature + point[:32] + word(int.from_bytes(point[32:], "big") ^ 1),
            False,
        ),
        ("other hash", hashlib.sha256(b"other").digest() + signature + point, False),
    ]


EDGE = _edge_cases()


@pytest.mark.parametrize(("name", "data", "valid"), EDGE, ids=[c[0] for c in EDGE])
def test_eip7951_edge_cases(name: str, data: bytes, valid: bool) -> None:
    assert p256_verify(data) is valid


def _call(w3: Web3, data: bytes) -> bytes:
    return bytes(w3.eth.call({"to": PRECOMPILE, "data": data}))


def test_embedded_chain_precompile(embedded: EmbeddedChain) -> None:
    for data, valid in CASES[:60] + [(d, v) for _, d, v in EDGE]:
        assert _call(embedded.w3, data) == ((1).to_bytes(32, "big") if valid else b"")


@pytest.mark.anvil
def test_anvil_gives_the_same_answers(anvil_url: str, embedded: EmbeddedChain) -> None:
    """anvil's default hardfork (osaka) has P256VERIFY at 0x100: same answers."""
    anvil = Web3(Web3.HTTPProvider(anvil_url))
    for data, valid in CASES + [(d, v) for _, d, v in EDGE]:
        answer: Any = _call(anvil, data)
        assert answer == _call(embedded.w3, data)
        assert answer == ((1).to_bytes(32, "big") if valid else b"")


def test_precompile_gas(embedded: EmbeddedChain) -> None:
    data = EDGE[0][1]
    gas = embedded.w3.eth.estimate_gas({"to": PRECOMPILE, "data": data})
    # 21,000 + calldata + 6,900: the precompile charges its EIP-7951 price.
    calldata = sum(16 if byte else 4 for byte in data)
    assert gas >= 21_000 + calldata + 6_900
