"""The node's anchorer: what it anchors is what it serves as a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.chain.conftest import MIN_STAKE, Net, embedded, net
from trustmesh.log.checkpoint import open_checkpoint
from trustmesh.log.note import NoteSigner
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import LogStore, open_store
from trustmesh.node._anchorer import Anchorer
from trustmesh.node._metrics import Metrics
from trustmesh.node._state import NodeState

__all__ = ["embedded", "net"]


class GrowingSigner(NoteSigner):
    """Lets the log grow while a checkpoint is being signed, as ingestion does."""

    store: LogStore | None = None

    def signature_line(self, data: bytes) -> str:
        if self.store is not None:
            self.store.append([os.urandom(40) for _ in range(5)])
        return super().signature_line(data)


def test_anchored_size_is_the_signed_checkpoint_size(net: Net, tmp_path: Path) -> None:
    origin = f"anchorer.test/{os.urandom(4).hex()}"
    signer = GrowingSigner(origin, Ed25519PrivateKey.generate())
    net.registry().register_log(
        LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1:1", MIN_STAKE
    )
    store = open_store(tmp_path / "log.db")
    store.append([os.urandom(40) for _ in range(7)])
    anchorer = Anchorer(
        store=store,
        signer=signer,
        anchor=net.anchor(),
        state=NodeState(tmp_path / "node.db"),
        metrics=Metrics(),
        epoch_seconds=5.0,
    )
    signer.store = store
    for _ in range(3):
        anchorer.tick()
        served = open_checkpoint(anchorer.checkpoint, signer.verifier, origin)
        assert store.size > served.size  # the log did grow during the tick
        assert anchorer.anchored == (served.size, served.root)
        assert net.anchor().latest(origin)[:2] == (served.size, served.root)
