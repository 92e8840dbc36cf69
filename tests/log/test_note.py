"""C2SP signed notes and checkpoints against the vectors of the Go checksum
database, transparency-dev, Sigsum-style logs and the C2SP specs
(tests/log/vectors/c2sp_notes.json lists each source), plus our own cases."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from trustmesh.errors import InvalidCheckpoint
from trustmesh.log.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint_text,
    sign_checkpoint,
)
from trustmesh.log.note import NoteSigner, NoteVerifier, open_note, parse_note, sign_note

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "c2sp_notes.json").read_text()
)
ED25519_VKEYS = [v for v in VECTORS["verifier_keys"] if v["algorithm_byte"] == 1]


def _is_ed25519(vkey: str) -> bool:
    return base64.b64decode(vkey.split("+", 2)[2])[:1] == b"\x01"


def _note_bytes(vector: dict[str, Any]) -> bytes:
    return base64.b64decode(vector["note_b64"])


# --- keys ---------------------------------------------------------------------


@pytest.mark.parametrize("vector", ED25519_VKEYS, ids=lambda v: v["vkey"][:30])
def test_verifier_keys(vector: dict[str, Any]) -> None:
    verifier = NoteVerifier.from_vkey(vector["vkey"])
    assert verifier.name == vector["name"]
    assert f"{verifier.key_id:08x}" == vector["key_id_hex"]
    assert verifier.public_key.hex() == vector["public_key_hex"]
    assert verifier.vkey == vector["vkey"]


@pytest.mark.parametrize("vector", VECTORS["invalid_verifier_keys"], ids=lambda v: v["why"][:40])
def test_invalid_verifier_keys(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidCheckpoint):
        NoteVerifier.from_vkey(vector["vkey"])


def test_non_ed25519_verifier_keys_are_refused_clearly() -> None:
    others = [v for v in VECTORS["verifier_keys"] if v["algorithm_byte"] != 1]
    assert others
    for vector in others:
        with pytest.raises(InvalidCheckpoint, match="not an Ed25519 key"):
            NoteVerifier.from_vkey(vector["vkey"])


ED25519_SKEYS = [
    v for v in VECTORS["signer_keys"] if base64.b64decode(v["skey"].split("+", 4)[4])[:1] == b"\x01"
]


@pytest.mark.parametrize("vector", ED25519_SKEYS, ids=lambda v: v["name"][:30])
def test_signer_keys(vector: dict[str, Any]) -> None:
    signer = NoteSigner.from_skey(vector["skey"])
    assert signer.name == vector["name"]
    assert signer.verifier.public_key.hex() == vector["public_key_hex"]
    assert f"{signer.verifier.key_id:08x}" == vector["key_id_hex"]


@pytest.mark.parametrize("vector", VECTORS["signing_known_answers"], ids=lambda v: v["skey"][12:40])
def test_signing_known_answers(vector: dict[str, Any]) -> None:
    signer = NoteSigner.from_skey(vector["skey"])
    assert signer.signature_line(vector["text"].encode()) == vector["expected_signature_line"]


# --- notes --------------------------------------------------------------------

SUPPORTED_NOTES = [
    n for n in VECTORS["notes"] if all(_is_ed25519(v) for v in n["vkeys"]) and not n.get("go_only")
]


def test_most_note_vectors_are_usable() -> None:
    assert len(SUPPORTED_NOTES) >= 60
    assert {n["expect"] for n in SUPPORTED_NOTES} == {"valid", "invalid"}


@pytest.mark.parametrize(
    "vector", SUPPORTED_NOTES, ids=lambda v: (v.get("why") or v["source"])[:50]
)
def test_note_vectors(vector: dict[str, Any]) -> None:
    verifiers = [NoteVerifier.from_vkey(v) for v in vector["vkeys"]]
    data = _note_bytes(vector)
    if vector["expect"] == "valid":
        note = open_note(data, verifiers)
        assert note.text == vector["parsed_text"]
        assert open_note(data.decode(), verifiers) == note
    else:
        with pytest.raises(InvalidCheckpoint):
            open_note(data, verifiers)


def test_go_only_duplicate_verifier_is_accepted_here() -> None:
    """Go's note.Open refuses a verifier listed twice as 'ambiguous'; the spec
    does not, and the same key twice is the same key."""
    (vector,) = [n for n in VECTORS["notes"] if n.get("go_only")]
    verifiers = [NoteVerifier.from_vkey(v) for v in vector["vkeys"]]
    open_note(_note_bytes(vector), verifiers)


def test_round_trip_and_known_key_failure() -> None:
    log, witness = NoteSigner.generate("example.com/log"), NoteSigner.generate("witness.example")
    text = "one\n\ntwo, after an empty line\n"
    note = sign_note(text, [log, witness])
    assert open_note(note, [log.verifier]).text == text
    assert open_note(note, [witness.verifier]).text == text
    assert len(parse_note(note).signatures) == 2
    # A known key whose signature does not verify rejects the whole note,
    # even when another known key's signature is fine.
    forged = note.replace(text, "one\n\ntwo, changed\n")
    with pytest.raises(InvalidCheckpoint, match="does not verify"):
        open_note(forged, [log.verifier, witness.verifier])
    with pytest.raises(InvalidCheckpoint, match="no signature from a known key"):
        open_note(note, [NoteSigner.generate("other").verifier])


@pytest.mark.parametrize(
    ("text", "message"),
    [("no newline", "end with a newline"), ("bell\x07\n", "control characters")],
)
def test_sign_refuses_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign_note(text, [NoteSigner.generate("k")])


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(InvalidCheckpoint, match="invalid key name"):
        NoteSigner.generate(name)


def test_oversized_and_non_utf8_notes() -> None:
    with pytest.raises(InvalidCheckpoint, match="too large"):
        parse_note(b"x" * 200_000)
    with pytest.raises(InvalidCheckpoint, match="UTF-8"):
        parse_note(b"\xff\n\n\xe2\x80\x94 k AAAA\n")


# --- checkpoints ----------------------------------------------------------------

ED25519_CHECKPOINTS = [
    c for c in VECTORS["checkpoints"] if "algorithm" not in c and not c.get("parse_only")
]


@pytest.mark.parametrize(
    "vector", ED25519_CHECKPOINTS, ids=lambda v: f"{v['origin'][:30]}@{v['size']}"
)
def test_checkpoint_vectors(vector: dict[str, Any]) -> None:
    checkpoint = open_checkpoint(vector["note"], NoteVerifier.from_vkey(vector["vkey"]))
    assert checkpoint.origin == vector["origin"]
    assert checkpoint.size == vector["size"]
    assert checkpoint.root.hex() == vector["root_hex"]


def test_checkpoint_vectors_are_there() -> None:
    assert len(ED25519_CHECKPOINTS) >= 30


@pytest.mark.parametrize("vector", VECTORS["checkpoint_bodies"], ids=lambda v: v["why"][:40])
def test_checkpoint_bodies_strictly(vector: dict[str, Any]) -> None:
    if vector["strict_c2sp_expect"] == "valid":
        checkpoint = parse_checkpoint_text(vector["text"])
        assert checkpoint.text() == vector["text"]
    else:
        with pytest.raises(InvalidCheckpoint):
            parse_checkpoint_text(vector["text"])


def test_checkpoint_round_trip_and_origin() -> None:
    signer = NoteSigner.generate("example.com/log")
    checkpoint = Checkpoint("example.com/log", 42, bytes(range(32)), ("ext one",))
    note = sign_checkpoint(checkpoint, signer)
    assert open_checkpoint(note, signer.verifier, origin="example.com/log") == checkpoint
    with pytest.raises(InvalidCheckpoint, match="not 'example.com/other'"):
        open_checkpoint(note, signer.verifier, origin="example.com/other")
    with pytest.raises(ValueError, match="key name must be its origin"):
        sign_checkpoint(Checkpoint("elsewhere", 1, bytes(32)), signer)


@pytest.mark.parametrize(
    "text",
    [
        "origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n1\nAAAA\n",
        "origin\n1\n",
        "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n１\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # noqa: RUF001 - a non-ASCII digit
    ],
)
def test_malformed_checkpoint_bodies(text: str) -> None:
    with pytest.raises(InvalidCheckpoint):
        parse_checkpoint_text(text)
