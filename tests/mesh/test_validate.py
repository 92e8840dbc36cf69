"""Each topic's validator: what is signed by the right key passes; anything forged,
unregistered, malformed, oversized or on an unknown topic is refused, with the
reason."""

from __future__ import annotations

import cbor2

from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note import LineVerifier
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.tlog_proof import format_tlog_proof
from trustmesh.mesh.receipts import pack
from trustmesh.mesh.topics import CHECKPOINTS, MAX_MESSAGE, READINGS, RECEIPTS, WITNESS, message_id
from trustmesh.mesh.validate import Keys, validate
from trustmesh.reading import sign_reading

DEVICE = SoftwareSigner.generate()
STRANGER = SoftwareSigner.generate()
LOG = LogSigner.from_seed("log.example", bytes(32))


def _keys() -> Keys:
    def device(did: str, seq: int) -> PublicKey | None:
        return DEVICE.public_key if did == did_from_key(DEVICE.public_key) else None

    def log(origin: str) -> LineVerifier | None:
        return LOG.verifier if origin == LOG.name else None

    return Keys(device, log)


def _readings(signer: SoftwareSigner, count: int, sensor: str = "t") -> bytes:
    return b"".join(sign_reading(signer, seq=k, ts=k, sensor=sensor, value=k)
                    for k in range(count))  # fmt: skip


def test_readings_pass_when_each_is_signed_by_its_registered_device() -> None:
    verdict = validate(READINGS, _readings(DEVICE, 50), _keys())
    assert verdict.accepted and verdict.items == 50
    assert validate(WITNESS, _readings(DEVICE, 3, sensor="witness"), _keys()).accepted
    assert validate(WITNESS, _readings(DEVICE, 1, sensor="challenge"), _keys()).accepted
    batch = bytearray(_readings(DEVICE, 3))
    batch[-1] ^= 1
    refusals = {
        bytes(batch): "reading 2: ",
        _readings(DEVICE, 2) + _readings(STRANGER, 1): "reading 2: its device is not registered",
        b"\x5a\x00": "not a sequence of readings",
        b"": "not a sequence of readings",
        b"\x00" * (MAX_MESSAGE + 1): f"over {MAX_MESSAGE} bytes",
    }
    for data, reason in refusals.items():
        verdict = validate(READINGS, data, _keys())
        assert not verdict.accepted and reason in verdict.reason, (reason, verdict)
    other = validate(WITNESS, _readings(DEVICE, 1), _keys())  # (a temperature)
    assert "not a challenge or a witness reading" in other.reason and other.blame
    stranger = validate(READINGS, _readings(STRANGER, 1), _keys())
    assert stranger.kind == "unknown-device" and not stranger.blame  # (not known here)
    assert "unknown topic" in validate("/other/v1", b"x", _keys()).reason


def test_checkpoints_and_receipts_pass_only_under_the_logs_key() -> None:
    leaves = [merkle.leaf_hash(bytes([k])) for k in range(5)]
    note = sign_checkpoint(Checkpoint(LOG.name, 5, merkle.root(leaves)), LOG)
    assert validate(CHECKPOINTS, note.encode(), _keys()).accepted
    other = LogSigner.from_seed("log.example", bytes([1]) * 32)  # the same name, another key
    forged = sign_checkpoint(Checkpoint(LOG.name, 5, merkle.root(leaves)), other)
    assert "checkpoint:" in validate(CHECKPOINTS, forged.encode(), _keys()).reason
    unknown = LogSigner.from_seed("elsewhere.example", bytes(32))
    alien = sign_checkpoint(Checkpoint(unknown.name, 5, merkle.root(leaves)), unknown)
    assert "no registered log" in validate(CHECKPOINTS, alien.encode(), _keys()).reason

    proofs = [format_tlog_proof(k, merkle.inclusion_proof(leaves, k), note) for k in range(5)]
    (message,) = pack(zip(leaves, proofs, strict=True))
    assert validate(RECEIPTS, message, _keys()).items == 5
    assert len(message) < sum(map(len, proofs)) / 2  # one checkpoint, not five
    (swapped,) = pack([(leaves[3], proofs[3]), (leaves[2], proofs[3])])
    assert "receipt 1:" in validate(RECEIPTS, swapped, _keys()).reason
    alien_proof = format_tlog_proof(3, merkle.inclusion_proof(leaves, 3), alien)
    (alien_message,) = pack([(leaves[3], alien_proof)])
    assert "no registered log" in validate(RECEIPTS, alien_message, _keys()).reason
    junk = [b"\xa0", b"\xff", cbor2.dumps({"checkpoint": note, "receipts": []}),
            cbor2.dumps({"checkpoint": note, "receipts": [["x", 3, []]]}),
            cbor2.dumps({"checkpoint": "not a note", "receipts": [[leaves[0], 0, []]]}),
            ]  # fmt: skip
    for data in junk:
        assert "not a receipts message" in validate(RECEIPTS, data, _keys()).reason, data


def test_a_batch_too_large_for_one_message_takes_several() -> None:
    """Receipts that exceed a message's limit go in several messages: each stays
    within it and checks under the log's key, and together they hold every
    receipt once (here a 10 kB limit; a topic's is 512 KiB)."""
    tree = [merkle.leaf_hash(k.to_bytes(2, "big")) for k in range(256)]
    note = sign_checkpoint(Checkpoint(LOG.name, len(tree), merkle.root(tree)), LOG)
    pairs = [(tree[k], format_tlog_proof(k, merkle.inclusion_proof(tree, k), note))
             for k in range(len(tree))]  # fmt: skip
    assert len(pack(pairs)) == 1  # (under the topic's limit)
    messages = pack(pairs, limit=10_000)
    assert len(messages) > 5 and all(len(m) <= 10_000 for m in messages)
    verdicts = [validate(RECEIPTS, m, _keys()) for m in messages]
    assert all(v.accepted for v in verdicts) and sum(v.items for v in verdicts) == len(tree)


def test_a_message_id_is_its_content_hash() -> None:
    data = _readings(DEVICE, 2)
    assert message_id(data) == message_id(bytes(data)) and len(message_id(data)) == 20
    assert message_id(data) != message_id(data + b"\x00")
