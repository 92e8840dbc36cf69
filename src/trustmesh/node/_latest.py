"""The latest checkpoint the node signed: what ``/v1/checkpoint`` serves and what
the anchorer anchors each epoch.

The ingest pipeline signs one checkpoint per committed batch; batches may finish
signing out of order (each in its own task), so the latest only ever grows. A
node starts by signing its log as it stands, so a checkpoint is there from the
first request on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note import NoteSigner


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str


class LatestCheckpoint:
    def __init__(self, signer: NoteSigner, size: int, root: bytes) -> None:
        self.origin = signer.name
        note = sign_checkpoint(Checkpoint(signer.name, size, root), signer)
        self._latest = SignedCheckpoint(size, root, note)
        self._lock = threading.Lock()

    def get(self) -> SignedCheckpoint:
        return self._latest

    def advance(self, signed: SignedCheckpoint) -> None:
        """Take ``signed`` if it is of a larger tree than the latest."""
        with self._lock:
            if signed.size > self._latest.size:
                self._latest = signed
