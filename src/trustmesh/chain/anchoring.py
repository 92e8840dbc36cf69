"""Anchor a log's current tree on-chain, continuing from its last anchor.

The node's anchoring loop and ``trustmesh chain anchor`` both call
:func:`anchor_log`. It never anchors a tree inconsistent with the last anchor:
it first checks that the local log, at the anchored size, has the anchored
root (a log that disagrees with its own anchor has been rewritten, and must
not be anchored over), then sends the RFC 9162 consistency proof.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustmesh.chain.suite import LogAnchor
from trustmesh.errors import ChainError
from trustmesh.log.store import LogStore


@dataclass(frozen=True)
class AnchorResult:
    origin: str
    size: int
    root: bytes
    previous_size: int
    transaction: str | None  # None when there was nothing new to anchor
    gas_used: int

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "previous_size": self.previous_size,
            "transaction": self.transaction,
            "gas_used": self.gas_used,
        }


class InconsistentWithAnchor(ChainError):
    """The local log does not extend what is anchored on-chain."""


def anchor_log(
    anchor: LogAnchor, store: LogStore, origin: str, size: int | None = None
) -> AnchorResult:
    """Anchor ``store`` at ``size`` (default: all of it) for ``origin``."""
    size = store.size if size is None else size
    anchored_size, anchored_root, _, _ = anchor.latest(origin)
    if anchored_size > size:
        raise InconsistentWithAnchor(
            f"{origin}: {anchored_size} entries are anchored, the local log has {size}"
        )
    if anchored_size and store.root(anchored_size) != anchored_root:
        raise InconsistentWithAnchor(
            f"{origin}: the local log's root at size {anchored_size} is not the anchored root"
        )
    root = store.root(size)
    if size == anchored_size:
        return AnchorResult(origin, size, root, anchored_size, None, 0)
    proof = store.consistency_proof(anchored_size, size) if anchored_size else []
    receipt = anchor.anchor(origin, size, root, proof)
    return AnchorResult(
        origin, size, root, anchored_size, receipt["transactionHash"].hex(), receipt["gasUsed"]
    )
