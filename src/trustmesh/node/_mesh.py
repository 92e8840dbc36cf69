"""The node on the mesh: device batches from the readings topic into the ingest
pipeline, their receipts back on the receipts topic (one message per batch).

Only receipts travel back: a refusal is unsigned, and a relay could forge one to
make a device drop a reading; a reading refused here simply gets no receipt, and
its device keeps it (and tries a node directly once it can). A batch that comes
again (its device resends until it has receipts) is answered with the original
receipts, as every duplicate is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from trustmesh._cborseq import InvalidSequence, split_sequence
from trustmesh.errors import InvalidDid
from trustmesh.identity import PublicKey, key_from_did
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.mesh.receipts import pack
from trustmesh.mesh.topics import CHECKPOINTS, READINGS, RECEIPTS
from trustmesh.mesh.validate import MAX_READINGS, Keys
from trustmesh.node._ingest import Accepted, Ingestor
from trustmesh.node._latest import LatestCheckpoint

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra)
    from trustmesh.mesh.peer import MeshPeer

log = logging.getLogger("trustmesh.node.mesh")

INGEST_SECONDS = 60.0


def node_keys(own: NoteVerifier, registered: Callable[[str], bytes | None]) -> Keys:
    """A node peer's keys: a reading is checked against its did:key (the node's
    ingest checks its registration), a log's checkpoint against this node's key or
    the one the Registry holds (``registered``: origin → its Ed25519 key, read once)."""
    known: dict[str, LineVerifier | None] = {own.name: own}

    def device(did: str, seq: int) -> PublicKey | None:
        try:
            return key_from_did(did)
        except InvalidDid:
            return None

    def log_verifier(origin: str) -> LineVerifier | None:
        if origin not in known:
            raw = registered(origin)
            known[origin] = NoteVerifier(origin, raw) if raw else None
        return known[origin]

    return Keys(device, log_verifier)


class MeshBridge:
    def __init__(self, peer: MeshPeer, ingestor: Ingestor, loop: asyncio.AbstractEventLoop) -> None:
        self.peer = peer
        self.ingestor = ingestor
        self.loop = loop

    def start(self) -> None:
        self.peer.subscribe(READINGS, self._on_batch)
        self.peer.subscribe(RECEIPTS, lambda data: None)  # relayed for devices, not used here

    def _on_batch(self, data: bytes) -> None:
        """One device batch (in the peer's worker thread): logged, its receipts sent."""
        try:
            items, decoded = split_sequence(data, MAX_READINGS)
        except InvalidSequence:
            return  # (the topic's validator let it through: it cannot be malformed)
        future = asyncio.run_coroutine_threadsafe(
            self.ingestor.submit_many(items, decoded), self.loop
        )
        try:
            outcomes = future.result(INGEST_SECONDS)
        except Exception:
            log.exception("mesh: a batch could not be logged")
            return
        receipts = [
            (outcome.leaf_hash, outcome.proof)
            for outcome in outcomes
            if isinstance(outcome, Accepted) and outcome.proof
        ]
        for message in pack(receipts):
            verdict = self.peer.publish(RECEIPTS, message)
            if not verdict.accepted:
                log.error("mesh: this node's own receipts were refused: %s", verdict.reason)


async def gossip_checkpoints(peer: MeshPeer, latest: LatestCheckpoint, seconds: float) -> None:
    """Publish this node's latest signed checkpoint on the mesh whenever it changes
    (looked at every ``seconds``), for watchers that do not poll this node."""
    sent = ""
    while True:
        note = latest.get().note
        if note != sent:
            verdict = await asyncio.to_thread(peer.publish, CHECKPOINTS, note.encode())
            if not verdict.accepted:
                log.error("mesh: this node's own checkpoint was refused: %s", verdict.reason)
            sent = note
        await asyncio.sleep(seconds)
