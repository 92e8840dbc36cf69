"""Receipts: proofs that a log holds an entry, as C2SP tlog-proofs.

After each batch it commits, a log signs one checkpoint of its new tree (with
both of its keys) and answers each entry of the batch with a tlog-proof
(:mod:`trustmesh.log.tlog_proof`): the entry's index, its inclusion proof in
that tree, and the signed checkpoint. A receipt is a proof, not a promise:
anyone holding the log's key checks it offline (any tlog-proof verifier can).
The log must then anchor a tree at least as large (else it is slashed, once
someone notarizes the checkpoint on-chain), and every later tree must extend
this one (else the receipt and the later tree are a split view).

>>> from trustmesh.log import merkle
>>> from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
>>> from trustmesh.log.compact import CompactRange
>>> from trustmesh.log.note import NoteSigner
>>> signer = NoteSigner.generate("example.com/log")
>>> leaves = [merkle.leaf_hash(bytes([i])) for i in range(3)]
>>> root, proofs = CompactRange().append_with_proofs(leaves)
>>> note = sign_checkpoint(Checkpoint("example.com/log", 3, root), signer)
>>> texts = issue_receipts(0, proofs, note)
>>> open_receipt(texts[2], leaves[2], signer.verifier).index
2
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from trustmesh.errors import InvalidCheckpoint, InvalidProof, InvalidReceipt
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.inclusions import Inclusions
from trustmesh.log.note import LineVerifier
from trustmesh.log.tlog_proof import HEADER, TlogProof, parse_tlog_proof

__all__ = ["Receipt", "check_proof", "issue_receipts", "open_receipt", "proof_line",
           "write_receipts"]  # fmt: skip


@dataclass(frozen=True)
class Receipt:
    """A verified receipt: ``leaf_hash`` is at ``proof.index`` in ``checkpoint``'s tree."""

    leaf_hash: bytes
    proof: TlogProof
    checkpoint: Checkpoint

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def index(self) -> int:
        return self.proof.index

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def note(self) -> str:
        """The signed checkpoint, verbatim."""
        return self.proof.checkpoint

    def text(self) -> str:
        return self.proof.text()


def open_receipt(
    text: str | bytes,
    leaf_hash: bytes,
    verifier: LineVerifier,
    origin: str | None = None,
    *,
    opened: dict[str, Checkpoint] | None = None,
) -> Receipt:
    """Check a receipt offline: a well-formed tlog-proof whose checkpoint the log's
    key signed (of ``origin``, when given) and whose proof puts ``leaf_hash`` at its
    index in that tree. :class:`InvalidReceipt` says which part failed.

    ``opened``: checkpoints already verified with this verifier and origin, by
    note (a batch's receipts share one; it is checked once and added here)."""
    return check_proof(parse_tlog_proof(text), leaf_hash, verifier, origin, opened=opened)


def check_proof(
    proof: TlogProof,
    leaf_hash: bytes,
    verifier: LineVerifier,
    origin: str | None = None,
    *,
    opened: dict[str, Checkpoint] | None = None,
    trees: dict[str, Inclusions] | None = None,
) -> Receipt:
    """:func:`open_receipt` of a tlog-proof parsed already (or read from another
    encoding of the same parts: the mesh's compact receipts). ``trees``: a batch's
    proofs by checkpoint, so that the hashes their paths share are checked once
    (:mod:`trustmesh.log.inclusions`; each proof's outcome is the same)."""
    checkpoint = opened.get(proof.checkpoint) if opened is not None else None
    if checkpoint is None:
        try:
            checkpoint = open_checkpoint(proof.checkpoint, verifier, origin)
        except InvalidCheckpoint as exc:
            raise InvalidReceipt(f"its checkpoint: {exc}") from None
        if opened is not None:
            opened[proof.checkpoint] = checkpoint
    if proof.index >= checkpoint.size:
        raise InvalidReceipt(f"index {proof.index} is beyond the tree of {checkpoint.size}")
    try:
        if trees is None:
            merkle.verify_inclusion(
                leaf_hash, proof.index, checkpoint.size, list(proof.hashes), checkpoint.root
            )
        else:
            tree = trees.get(proof.checkpoint)
            if tree is None:
                tree = trees[proof.checkpoint] = Inclusions(checkpoint.size, checkpoint.root)
            tree.verify(leaf_hash, proof.index, proof.hashes)
    except InvalidProof as exc:
        raise InvalidReceipt(f"not that entry's proof: {exc}") from None
    return Receipt(leaf_hash, proof, checkpoint)


def issue_receipts(first_index: int, proofs: list[list[bytes]], note: str) -> list[str]:
    """The receipts of consecutive entries from ``first_index``: each its tlog-proof
    (``proofs`` are their inclusion proofs in the tree ``note`` signs)."""
    return write_receipts(first_index, ["".join(map(proof_line, path)) for path in proofs], note)


def proof_line(digest: bytes) -> str:
    """A hash as a tlog-proof writes it: a line of standard base64 (RFC 4648 §4)."""
    return binascii.b2a_base64(digest).decode()  # with its newline


def write_receipts(first_index: int, written: list[str], note: str) -> list[str]:
    """:func:`issue_receipts` of proofs written already, each its hashes'
    :func:`proof_line` joined (a batch's proofs share most of their hashes: see
    :meth:`~trustmesh.log.compact.CompactRange.append_with_written_proofs`)."""
    tail = "\n" + note
    return [
        f"{HEADER}\nindex {index}\n{path}{tail}" for index, path in enumerate(written, first_index)
    ]
