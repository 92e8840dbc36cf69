"""A node gossips each new checkpoint of its log; a mesh peer that has stopped is
logged and tried again at the next change, never the end of the gossip."""

from __future__ import annotations

import asyncio
import logging

import pytest

from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note import NoteSigner
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.validate import Keys
from trustmesh.node._latest import LatestCheckpoint, SignedCheckpoint
from trustmesh.node._mesh import gossip_checkpoints

ORIGIN = "example.com/gossip"


def test_a_stopped_peer_does_not_end_the_gossip(caplog: pytest.LogCaptureFixture) -> None:
    signer = NoteSigner.generate(ORIGIN)
    latest = LatestCheckpoint(signer, 0, bytes(32))
    peer = MeshPeer(Keys(lambda did, seq: None, lambda origin: signer.verifier)).start()
    peer.close()  # stopped: every publish fails

    def failures() -> int:
        return sum("was not published" in r.getMessage() for r in caplog.records)

    async def run() -> bool:
        task = asyncio.create_task(gossip_checkpoints(peer, latest, 0.01))
        for size in (1, 2):
            while failures() < size:  # each change is tried (and fails) once
                assert not task.done(), task
                await asyncio.sleep(0.01)
            note = sign_checkpoint(Checkpoint(ORIGIN, size, bytes(32)), signer)
            latest.advance(SignedCheckpoint(size, bytes(32), note))
        while failures() < 3:
            await asyncio.sleep(0.01)
        alive = not task.done()
        task.cancel()
        return alive

    with caplog.at_level(logging.WARNING, logger="trustmesh.node.mesh"):
        assert asyncio.run(asyncio.wait_for(run(), 60))
    assert failures() == 3  # the first checkpoint, then each of the two changes, once
