"""The node's anchorer: what it anchors is the latest checkpoint the node signed
(its receipts' trees are covered by that), not whatever the log grew to since."""

from __future__ import annotations

import os
from pathlib import Path

from tests.chain.conftest import MIN_STAKE, Net, embedded, net
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import open_store
from trustmesh.node._anchorer import Anchorer
from trustmesh.node._latest import LatestCheckpoint, SignedCheckpoint
from trustmesh.node._metrics import Metrics

__all__ = ["embedded", "net"]


def test_anchored_size_is_the_latest_signed_checkpoint_size(net: Net, tmp_path: Path) -> None:
    origin = f"anchorer.test/{os.urandom(4).hex()}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    net.registry().register_log(signer, "http://127.0.0.1:1", MIN_STAKE)
    store = open_store(tmp_path / "log.db")
    store.append([os.urandom(40) for _ in range(7)])
    latest = LatestCheckpoint(signer, store.size, store.root())
    anchorer = Anchorer(
        store=store, latest=latest, anchor=net.anchor(), metrics=Metrics(), epoch_seconds=5.0
    )
    for _ in range(3):
        store.append([os.urandom(40) for _ in range(5)])  # the log grows; unsigned yet
        served = open_checkpoint(latest.get().note, signer.verifier, origin)
        anchorer.tick()
        assert store.size > served.size
        assert anchorer.anchored == (served.size, served.root)
        assert net.anchor().latest(origin)[:2] == (served.size, served.root)
        size, root = store.size, store.root()
        latest.advance(
            SignedCheckpoint(size, root, sign_checkpoint(Checkpoint(origin, size, root), signer))
        )
    older = latest.get()
    latest.advance(SignedCheckpoint(3, store.root(3), "an older note"))
    assert latest.get() == older  # batches finishing out of order never move it back
    store.close()
