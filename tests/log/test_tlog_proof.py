"""C2SP tlog-proof: the spec's own example and transparency-dev/formats' Go
cases (tests/log/vectors/tlog_proof.json names each source), then every way a
text can be malformed."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustmesh.errors import InvalidReceipt
from trustmesh.log.tlog_proof import (
    HEADER,
    MAX_PROOF_SIZE,
    TlogProof,
    format_tlog_proof,
    parse_tlog_proof,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "tlog_proof.json").read_text()
)
CHECKPOINT = "example.com/log\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n— x AAAA\n"


def test_the_spec_example_parses() -> None:
    example = VECTORS["spec_example"]
    proof = parse_tlog_proof(example["text"])
    assert proof.index == example["index"]
    assert proof.extra == base64.b64decode(example["extra_b64"])
    assert [base64.b64encode(h).decode() for h in proof.hashes] == example["hashes_b64"]
    assert proof.checkpoint == example["checkpoint"]
    assert proof.text() == example["text"]  # and it writes back byte for byte


@pytest.mark.parametrize("vector", VECTORS["marshal"], ids=lambda v: v["name"])
def test_go_marshal_vectors(vector: dict[str, Any]) -> None:
    hashes = [hashlib.sha256(text.encode()).digest() for text in vector["hash_preimages"]]
    extra = vector["extra"].encode() if vector["extra"] is not None else None
    text = format_tlog_proof(vector["index"], hashes, vector["checkpoint"], extra)
    assert text == vector["text"]
    assert parse_tlog_proof(text) == TlogProof(
        vector["index"], tuple(hashes), vector["checkpoint"], extra
    )


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["name"])
def test_malformed_vectors_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidReceipt):
        parse_tlog_proof(vector["text"])


def test_the_vectors_are_all_there() -> None:
    assert len(VECTORS["marshal"]) == 6
    assert len(VECTORS["malformed"]) >= 8


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "starts with"),
        (HEADER, "empty line"),
        (f"{HEADER}\r\nindex 0\n\n{CHECKPOINT}", "starts with"),
        (f"{HEADER}\nindex 0\nextra AA==\n\n{CHECKPOINT}", "hash 0 is not base64"),
        (f"{HEADER}\nextra\nindex 0\n\n{CHECKPOINT}", "names its index"),
        (f"{HEADER}\nindex ٣\n\n{CHECKPOINT}", "not a decimal"),
        (f"{HEADER}\nindex 1\n\n{CHECKPOINT[:-1]}", "ends with a newline"),
        (f"{HEADER}\nindex 1\n" + "AA==\n" + "\n" + CHECKPOINT, "1 bytes, not 32"),
        (
            f"{HEADER}\nindex 1\n" + (base64.b64encode(bytes(32)).decode() + "\n") * 65 + "\n",
            "at most 64 hashes",
        ),
    ],
)
def test_refusals_name_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidReceipt, match=reason):
        parse_tlog_proof(text)


def test_bytes_are_taken_and_bounded() -> None:
    text = format_tlog_proof(3, [bytes(32)], CHECKPOINT)
    assert parse_tlog_proof(text.encode()).index == 3
    with pytest.raises(InvalidReceipt, match="UTF-8"):
        parse_tlog_proof(b"\xff" + text.encode())
    with pytest.raises(InvalidReceipt, match="at most"):
        parse_tlog_proof(b"x" * (MAX_PROOF_SIZE + 1))
    with pytest.raises(InvalidReceipt, match="at most"):
        parse_tlog_proof("x" * (MAX_PROOF_SIZE + 1))


def test_format_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_tlog_proof(-1, [], CHECKPOINT)
    with pytest.raises(ValueError, match="newline"):
        format_tlog_proof(0, [], CHECKPOINT[:-1])
    with pytest.raises(ValueError, match="32-byte"):
        format_tlog_proof(0, [bytes(31)], CHECKPOINT)


@given(
    index=st.integers(0, (1 << 64) - 1),
    hashes=st.lists(st.binary(min_size=32, max_size=32), max_size=64),
    extra=st.none() | st.binary(max_size=64),
)
def test_round_trip(index: int, hashes: list[bytes], extra: bytes | None) -> None:
    proof = TlogProof(index, tuple(hashes), CHECKPOINT, extra)
    assert parse_tlog_proof(proof.text()) == proof


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_is_refused(text: str) -> None:
    """Anything is refused with InvalidReceipt (nothing else escapes), or read as a
    proof that writes back to exactly the text it came from (it was canonical)."""
    candidate = HEADER + "\n" + text
    try:
        proof = parse_tlog_proof(candidate)
    except InvalidReceipt:
        return  # refused: the one error a parser may raise
    assert proof.text() == candidate


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["name"])
def test_hash_lines_read_before_change_nothing_but_the_work(vector: dict[str, Any]) -> None:
    """A batch's proofs parsed with the hash lines they share decoded once: each
    parses as alone, and a malformed one is refused as alone."""
    shared = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    decoded: dict[str, bytes] = {}
    for index in range(3):
        text = format_tlog_proof(index, shared[index:], CHECKPOINT)
        assert parse_tlog_proof(text, decoded=decoded) == parse_tlog_proof(text)
    assert len(decoded) == 3
    with pytest.raises(InvalidReceipt) as alone:
        parse_tlog_proof(vector["text"])
    with pytest.raises(InvalidReceipt) as batched:
        parse_tlog_proof(vector["text"], decoded=decoded)
    assert str(batched.value) == str(alone.value)


@given(st.lists(st.lists(st.sampled_from([hashlib.sha256(bytes([i])).digest() for i in range(4)]),
                         max_size=5), max_size=6))  # fmt: skip
def test_hashes_written_before_change_nothing_but_the_work(paths: list[list[bytes]]) -> None:
    encoded: dict[bytes, str] = {}
    for index, path in enumerate(paths):
        text = format_tlog_proof(index, path, CHECKPOINT, encoded=encoded)
        assert text == format_tlog_proof(index, path, CHECKPOINT)
    assert len(encoded) == len({h for path in paths for h in path})
    with pytest.raises(ValueError, match="32-byte"):
        format_tlog_proof(0, [bytes(31)], CHECKPOINT, encoded=encoded)
