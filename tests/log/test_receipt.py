"""Receipts: tlog-proofs of entries in signed checkpoints, made a batch at a time,
checked by our verifier and by an independent implementation of the format
(proofbundle, PyPI: its own tlog-proof writer and verifier), and refused with a
reason when malformed, truncated, tampered with or of another log."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proofbundle.tlogproof import format_tlog_proof as their_format
from proofbundle.tlogproof import verify_tlog_proof as their_verify

from trustmesh.errors import InvalidProof, InvalidReceipt
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.compact import CompactRange
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.receipt import issue_receipts, open_receipt, proof_line
from trustmesh.log.tlog_proof import format_tlog_proof, parse_tlog_proof

ORIGIN = "example.com/log"


def _log(size: int, appended: int) -> tuple[LogSigner, list[bytes], list[bytes], list[str]]:
    """A log of ``size`` entries whose last ``appended`` came as one batch: its
    signer, entries, leaf hashes, and the batch's receipts."""
    signer = LogSigner.from_seed(ORIGIN, bytes(32))
    entries = [os.urandom(40) for _ in range(size)]
    leaves = [merkle.leaf_hash(entry) for entry in entries]
    compact = CompactRange()
    compact.extend(leaves[: size - appended])
    root, proofs = compact.append_with_proofs(leaves[size - appended :])
    note = sign_checkpoint(Checkpoint(ORIGIN, size, root), signer)
    return signer, entries, leaves, issue_receipts(size - appended, proofs, note)


def test_receipts_verify_here_and_with_an_independent_implementation() -> None:
    signer, entries, leaves, receipts = _log(1000, 300)
    opened: dict[str, Checkpoint] = {}
    for offset, text in enumerate(receipts):
        index = 700 + offset
        receipt = open_receipt(text, leaves[index], signer.verifier, ORIGIN, opened=opened)
        assert (receipt.index, receipt.size, receipt.origin) == (index, 1000, ORIGIN)
        assert receipt.text() == text
        theirs = their_verify(text, entries[index], signer.verifier.vkey, expected_origin=ORIGIN)
        assert theirs["ok"] and theirs["index"] == index, theirs
    assert len(opened) == 1  # one checkpoint for the batch, checked once
    # The P-256 key (what the chain checks) verifies the same receipts.
    assert open_receipt(receipts[0], leaves[700], signer.p256.verifier).index == 700


def test_we_read_what_the_independent_implementation_writes() -> None:
    signer, _, leaves, receipts = _log(10, 10)
    proof = parse_tlog_proof(receipts[4])
    text = their_format(4, list(proof.hashes), proof.checkpoint)
    assert text == receipts[4]  # byte for byte the same format
    assert open_receipt(text, leaves[4], signer.verifier).index == 4


def test_the_batch_writer_is_the_reference_writer() -> None:
    _, _, leaves, receipts = _log(37, 20)
    for offset, text in enumerate(receipts):
        proof = parse_tlog_proof(text)
        index = 17 + offset
        assert proof.hashes == tuple(merkle.inclusion_proof(leaves, index))
        assert text == format_tlog_proof(index, proof.hashes, proof.checkpoint)


def test_wrong_receipts_are_refused_with_the_reason() -> None:
    signer, _, leaves, receipts = _log(16, 16)
    text = receipts[5]
    proof = parse_tlog_proof(text)

    def refused(candidate: str, leaf: bytes = leaves[5], **kwargs: object) -> str:
        with pytest.raises(InvalidReceipt) as info:
            open_receipt(candidate, leaf, signer.verifier, **kwargs)  # type: ignore[arg-type]
        return str(info.value)

    assert "not that entry's proof" in refused(text, leaves[6])  # another entry
    assert "not that entry's proof" in refused(text.replace("index 5", "index 4"))
    flipped = format_tlog_proof(5, (proof.hashes[0][::-1], *proof.hashes[1:]), proof.checkpoint)
    assert "not that entry's proof" in refused(flipped)
    truncated = format_tlog_proof(5, proof.hashes[:-1], proof.checkpoint)
    assert "too short" in refused(truncated)
    assert "beyond the tree" in refused(format_tlog_proof(16, proof.hashes, proof.checkpoint))
    other = LogSigner.from_seed(ORIGIN, bytes([1]) * 32)
    assert "ends with a newline" in refused(text.replace(proof.checkpoint, ""))
    foreign = sign_checkpoint(Checkpoint(ORIGIN, 16, merkle.root(leaves)), other)
    assert "no signature from a known key" in refused(text.replace(proof.checkpoint, foreign))
    elsewhere = LogSigner.from_seed("elsewhere.example/log", bytes(32))
    moved = sign_checkpoint(Checkpoint("elsewhere.example/log", 16, merkle.root(leaves)), elsewhere)
    assert "its checkpoint" in refused(text.replace(proof.checkpoint, moved), origin=ORIGIN)
    assert "starts with" in refused(text[1:])
    assert "empty line" in refused(text[: text.index("\n\n")])
    assert "ends with a newline" in refused(text[:-10])
    assert "its checkpoint" in refused(text[:-10] + "\n")  # a truncated signature
    forged = proof.checkpoint.replace("\n16\n", "\n17\n")
    assert "does not verify" in refused(text.replace(proof.checkpoint, forged))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 600), data=st.data())
def test_batch_proofs_are_the_reference_proofs(size: int, data: st.DataObject) -> None:
    """Every split of a log into what came before and one batch gives the RFC 9162
    root and proofs, and leaves the compact range of the whole log."""
    before = data.draw(st.integers(0, size - 1))
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    compact = CompactRange()
    compact.extend(leaves[:before])
    root, proofs = compact.append_with_proofs(leaves[before:])
    assert root == merkle.root(leaves)
    for offset in {0, len(proofs) // 2, len(proofs) - 1}:
        assert proofs[offset] == merkle.inclusion_proof(leaves, before + offset)
    whole = CompactRange()
    whole.extend(leaves)
    assert (compact.size, compact.hashes, compact.root()) == (size, whole.hashes, root)
    # Written as a node writes them (each node once): the same proofs, line for line.
    again = CompactRange()
    again.extend(leaves[:before])
    written_root, written = again.append_with_written_proofs(leaves[before:], proof_line)
    assert written_root == root
    assert written == ["".join(map(proof_line, path)) for path in proofs]


def test_an_empty_batch_changes_nothing() -> None:
    compact = CompactRange()
    compact.extend([bytes(32)] * 5)
    assert compact.append_with_proofs([]) == (compact.root(), [])
    with pytest.raises(ValueError, match="perfect subtrees"):
        CompactRange.from_hashes(5, [bytes(32)])


@settings(max_examples=60, deadline=None)
@given(new=st.integers(2, 300), data=st.data())
def test_prefix_root_proves_what_a_larger_tree_holds(new: int, data: st.DataObject) -> None:
    """The consistency path (old root first) rebuilds the new root and gives the
    true prefix root: the off-chain twin of Disputes.prove_inconsistent."""
    old = data.draw(st.integers(1, new - 1))
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(new)]
    old_root = merkle.root(leaves[:old])
    path = merkle.prefix_proof(old, old_root, merkle.consistency_proof(leaves, old))
    assert merkle.prefix_root(old, new, merkle.root(leaves), path) == old_root
    with pytest.raises(InvalidProof):
        merkle.prefix_root(old, new, bytes(32), path)  # not that tree's path
    with pytest.raises(InvalidProof):
        merkle.prefix_root(new, new, merkle.root(leaves), path)
