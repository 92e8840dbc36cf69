"""P-256 (type 0x02) note signatures and the log's two keys from one seed."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from trustmesh.errors import InvalidCheckpoint, InvalidReceipt
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from trustmesh.log.note import NoteSigner, open_note, parse_note, sign_note
from trustmesh.log.note_p256 import (
    ECDSA_TYPE,
    LogSigner,
    P256NoteSigner,
    p256_signature,
    parse_p256_vkey,
)
from trustmesh.log.receipt import issue_receipts, open_receipt

ORIGIN = "example.com/log"


def test_log_keys_are_derived_from_the_seed_deterministically() -> None:
    seed = os.urandom(32)
    a, b = LogSigner.from_seed(ORIGIN, seed), LogSigner.from_seed(ORIGIN, seed)
    assert a.p256.verifier == b.p256.verifier
    assert a.verifier == NoteSigner.from_seed(ORIGIN, seed).verifier
    assert LogSigner.from_seed(ORIGIN, os.urandom(32)).p256.verifier != a.p256.verifier


def test_key_id_is_the_witness_one() -> None:
    verifier = LogSigner.from_seed(ORIGIN, os.urandom(32)).p256.verifier
    point = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + verifier.public_key
    )
    spki = point.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verifier.key_id == int.from_bytes(hashlib.sha256(spki).digest()[:4], "big")
    name, _, rest = verifier.vkey.partition("+")
    hex_id, _, encoded = rest.partition("+")
    assert (name, int(hex_id, 16)) == (ORIGIN, verifier.key_id)
    assert base64.b64decode(encoded) == bytes([ECDSA_TYPE]) + spki
    assert parse_p256_vkey(verifier.vkey) == verifier


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/log+00000000+AQ==",
        "example.com/log+zz+AgA=",
        "example.com/log",
        "example.com/log+00000000+not base64",
    ],
)
def test_malformed_p256_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(InvalidCheckpoint):
        parse_p256_vkey(vkey)


def test_p256_vkey_with_a_wrong_id_is_refused() -> None:
    vkey = LogSigner.from_seed(ORIGIN, os.urandom(32)).p256.verifier.vkey
    name, _, rest = vkey.partition("+")
    hex_id, _, encoded = rest.partition("+")
    with pytest.raises(InvalidCheckpoint, match="key ID"):
        parse_p256_vkey(f"{name}+{int(hex_id, 16) ^ 1:08x}+{encoded}")


def test_checkpoints_and_receipts_carry_both_signatures() -> None:
    signer = LogSigner.from_seed(ORIGIN, os.urandom(32))
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, bytes(range(32))), signer)
    assert len(parse_note(note).signatures) == 2
    # Each key alone verifies it: an Ed25519-only client is unaffected.
    for verifier in (signer.verifier, signer.p256.verifier):
        assert open_checkpoint(note, verifier, ORIGIN).size == 7
    leaves = [bytes([i]) * 32 for i in range(7)]
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, merkle.root(leaves)), signer)
    (receipt,) = issue_receipts(3, [merkle.inclusion_proof(leaves, 3)], note)
    for verifier in (signer.verifier, signer.p256.verifier):
        assert open_receipt(receipt, leaves[3], verifier).index == 3


def test_p256_signature_is_what_the_chain_checks() -> None:
    signer = LogSigner.from_seed(ORIGIN, os.urandom(32))
    text = Checkpoint(ORIGIN, 9, bytes(32)).text()
    note = sign_note(text, signer.note_signers())
    r, s = p256_signature(note, signer.p256.verifier)

    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + signer.p256.verifier.public_key
    )
    der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    key.verify(der, text.encode(), ec.ECDSA(hashes.SHA256()))


def test_a_bad_p256_signature_rejects_the_note() -> None:
    signer = LogSigner.from_seed(ORIGIN, os.urandom(32))
    other = P256NoteSigner(ORIGIN, ec.generate_private_key(ec.SECP256R1()))
    note = sign_note("hello\n", [signer])  # Ed25519 only
    forged_line = other.signature_line(b"hello\n")
    # Re-key the forged line to the log's P-256 key ID: a known key whose signature fails.
    raw = base64.b64decode(forged_line.split(" ")[2])
    key_id = signer.p256.verifier.key_id.to_bytes(4, "big")
    line = f"\u2014 {ORIGIN} {base64.b64encode(key_id + raw[4:]).decode()}\n"
    with pytest.raises(InvalidCheckpoint, match="does not verify"):
        open_note(note + line, [signer.p256.verifier])
    receipt = f"c2sp.org/tlog-proof@v1\nindex 0\n\n{note}{line}"
    with pytest.raises(InvalidReceipt, match="does not verify"):
        open_receipt(receipt, bytes(32), signer.p256.verifier)
    with pytest.raises(InvalidCheckpoint, match="no signature from a known key"):
        open_note(note, [signer.p256.verifier])
