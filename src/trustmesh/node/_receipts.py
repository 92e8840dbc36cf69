"""A committed batch's checkpoint and receipts: one checkpoint of the new tree,
signed with the log's keys, and for each reading a tlog-proof in it.

The batch's inclusion proofs come from the compact range of the log before it
(:meth:`~trustmesh.log.compact.CompactRange.append_with_proofs`: each node hashed
once, nothing read from the store), so a batch costs two signatures and a few
microseconds a reading, whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.compact import CompactRange
from trustmesh.log.note import NoteSigner
from trustmesh.log.receipt import issue_receipts, proof_line, write_receipts


@dataclass(frozen=True)
class BatchReceipts:
    """A committed batch's signed checkpoint and the receipt of each reading in it."""

    size: int
    root: bytes
    note: str
    fresh: list[str]  # of the entries the batch appended, in order
    earlier: dict[int, str]  # of entries logged before it (duplicates), by index


def batch_receipts(
    signer: NoteSigner,
    before: CompactRange,
    leaves: list[bytes],
    earlier: dict[int, list[bytes]],
) -> BatchReceipts:
    """Sign the tree that ``leaves`` appended to the log whose compact range was
    ``before``, and make the receipts, each a tlog-proof in that tree: of the
    appended entries, and of ``earlier`` ones whose inclusion proofs in the new
    tree are given (by index)."""
    compact = before.copy()
    root, written = compact.append_with_written_proofs(leaves, proof_line)
    note = sign_checkpoint(Checkpoint(signer.name, compact.size, root), signer)
    fresh = write_receipts(before.size, written, note)
    older = {index: issue_receipts(index, [proof], note)[0] for index, proof in earlier.items()}
    return BatchReceipts(compact.size, root, note, fresh, older)
