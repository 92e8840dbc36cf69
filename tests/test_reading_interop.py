"""Interoperability with pycose, an independent COSE implementation, both ways.

pycose's ``decode()`` accepts only tagged messages, so the trustmesh → pycose
direction gives it the log entry with tag 18 in front (the same message).
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.algorithms import EdDSA, Es256
from pycose.headers import KID, Algorithm
from pycose.keys.curves import P256, Ed25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message

from trustmesh.errors import BadSignature
from trustmesh.identity import Alg, PublicKey, SoftwareSigner, did_from_key
from trustmesh.reading import sign_reading, verify_reading

FIELDS: dict[str, Any] = {
    "seq": 42,
    "ts": 1_700_000_000_123,
    "sensor": "temperature",
    "value": 21.5,
    "unit": "C",
}


def _pycose_key(alg: Alg) -> tuple[Any, PublicKey]:
    """A fresh pycose private key and the same key as a trustmesh PublicKey."""
    if alg is Alg.ES256:
        ec2 = EC2Key.generate_key(crv=P256)
        return ec2, PublicKey.from_uncompressed_p256(b"\x04" + ec2.x + ec2.y)
    okp = OKPKey.generate_key(crv=Ed25519)
    return okp, PublicKey(Alg.EDDSA, okp.x)


def _pycose_public_key(public: PublicKey) -> Any:
    if public.alg is Alg.EDDSA:
        return OKPKey(crv=Ed25519, x=public.raw)
    numbers = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), public.raw
    ).public_numbers()
    return EC2Key(crv=P256, x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))


_PYCOSE_ALG = {Alg.ES256: Es256, Alg.EDDSA: EdDSA}


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
@pytest.mark.parametrize("alg", list(Alg), ids=lambda a: a.label)
def test_pycose_signs_trustmesh_verifies(alg: Alg, tagged: bool) -> None:
    private, public = _pycose_key(alg)
    did = did_from_key(public)
    message = Sign1Message(
        phdr={Algorithm: _PYCOSE_ALG[alg], KID: did.encode()},
        payload=cbor2.dumps(FIELDS, canonical=True),
    )
    message.key = private
    data = message.encode(tag=tagged)
    reading = verify_reading(data)
    assert (reading.did, reading.alg, reading.seq, reading.value) == (did, alg, 42, 21.5)
    assert reading.entry == (data[1:] if tagged else data)


@pytest.mark.parametrize("alg", list(Alg), ids=lambda a: a.label)
def test_pycose_signature_by_another_key_fails_in_trustmesh(alg: Alg) -> None:
    private, _ = _pycose_key(alg)
    _, other = _pycose_key(alg)
    message = Sign1Message(
        phdr={Algorithm: _PYCOSE_ALG[alg], KID: did_from_key(other).encode()},
        payload=cbor2.dumps(FIELDS, canonical=True),
    )
    message.key = private
    with pytest.raises(BadSignature):
        verify_reading(message.encode(tag=True))


def _pycose_decode(entry: bytes) -> Sign1Message:
    decoded: Sign1Message = Sign1Message.decode(b"\xd2" + entry)  # tag 18
    return decoded


@pytest.mark.parametrize("alg", list(Alg), ids=lambda a: a.label)
def test_trustmesh_signs_pycose_verifies(alg: Alg) -> None:
    signer = SoftwareSigner.generate(alg)
    entry = sign_reading(signer, **FIELDS)
    message = _pycose_decode(entry)
    message.key = _pycose_public_key(signer.public_key)
    assert message.verify_signature()
    assert message.phdr[Algorithm] is _PYCOSE_ALG[alg]
    assert message.phdr[KID] == did_from_key(signer.public_key).encode()
    assert message.uhdr == {}
    assert message.payload is not None
    assert cbor2.loads(message.payload) == FIELDS


@pytest.mark.parametrize("alg", list(Alg), ids=lambda a: a.label)
def test_pycose_rejects_a_tampered_trustmesh_reading(alg: Alg) -> None:
    signer = SoftwareSigner.generate(alg)
    entry = bytearray(sign_reading(signer, **FIELDS))
    entry[-1] ^= 0x01  # last signature byte
    message = _pycose_decode(bytes(entry))
    message.key = _pycose_public_key(signer.public_key)
    assert not message.verify_signature()
