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
from trustmesh._problems import Problem
from trustmesh.errors import InvalidMeshMessage
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.mesh.receipts import pack
from trustmesh.mesh.relay import batch_of
from trustmesh.mesh.topics import CHECKPOINTS, READINGS, RECEIPTS, WITNESS
from trustmesh.mesh.validate import MAX_READINGS, Keys, Verdict, did_key, validate
from trustmesh.node._ingest import Accepted, Ingestor
from trustmesh.node._latest import LatestCheckpoint

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra)
    from trustmesh.mesh.peer import MeshPeer

log = logging.getLogger("trustmesh.node.mesh")

INGEST_SECONDS = 25.0  # under the peer's validation timeout


def node_keys(own: NoteVerifier, registered: Callable[[str], bytes | None]) -> Keys:
    """A node peer's keys: a reading is checked against its did:key (the node's
    ingest checks its registration), a log's checkpoint against this node's key or
    the one the Registry holds (``registered``: origin → its Ed25519 key, read once)."""
    known: dict[str, LineVerifier | None] = {own.name: own}

    def log_verifier(origin: str) -> LineVerifier | None:
        if origin not in known:
            raw = registered(origin)
            known[origin] = NoteVerifier(origin, raw) if raw else None
        return known[origin]

    return Keys(did_key, log_verifier)


# What a reading's own bytes make invalid (InvalidReading's reasons, and a signature
# that does not verify): a peer that forwards it is at fault.
INVALID = frozenset({"invalid", "oversized", "bad-cbor", "wrong-structure", "unknown-alg",
                     "kid-not-did", "missing-field", "bad-field", "signature"})  # fmt: skip


class MeshBridge:
    """Device batches judged by logging them: the ingest checks each reading's
    signature (once, on every core) against the Registry's key; a batch is passed
    on to other peers only when every reading in it was logged here."""

    def __init__(self, peer: MeshPeer, ingestor: Ingestor, loop: asyncio.AbstractEventLoop) -> None:
        self.peer = peer
        self.ingestor = ingestor
        self.loop = loop

    def start(self) -> None:
        self.peer.judge(READINGS, self._log_batch)
        self.peer.judge(WITNESS, self._log_witnessing)
        self.peer.subscribe(READINGS, None)  # (logged as judged)
        self.peer.subscribe(WITNESS, None)
        self.peer.subscribe(RECEIPTS, None)  # relayed for devices, not used here
        self.peer.subscribe(CHECKPOINTS, None)  # relayed for watchers
        self.peer.serve(self._answer)  # devices' batches asked for on streams

    def _log_witnessing(self, data: bytes) -> Verdict:
        """Challenges and witness readings heard on the mesh, logged like readings
        (few: checked by the topic's validator first, sensors included)."""
        checked = validate(WITNESS, data, self.peer.keys)
        return checked if not checked.accepted else self._log_batch(data, checked=True)

    def _log_batch(self, data: bytes, *, checked: bool = False) -> Verdict:
        """One device batch heard on the readings topic (in a worker thread): logged,
        its receipts sent on the receipts topic; whether to pass it on. ``checked``:
        its signatures were checked already."""
        verdict, messages = self._log(data, checked=checked)
        for message in messages:
            sent = self.peer.publish(RECEIPTS, message, trusted=True)  # (made here, just now)
            if not sent.accepted:
                log.error("mesh: receipts not sent: %s", sent.reason)
        return verdict

    def _answer(self, asker: str, data: bytes) -> tuple[Verdict, list[bytes]]:
        """One device batch asked for on the relay protocol: logged, its receipts
        the answer (whatever hops it had left: here is where it was going)."""
        try:
            _, batch = batch_of(data)
        except InvalidMeshMessage as exc:
            return Verdict(False, str(exc), kind="malformed"), []
        return self._log(batch)

    def _log(self, data: bytes, *, checked: bool = False) -> tuple[Verdict, list[bytes]]:
        """A batch logged: the verdict on it, and its receipts as mesh messages."""
        try:
            items, decoded = split_sequence(data, MAX_READINGS)
        except InvalidSequence as exc:
            return Verdict(False, f"not a sequence of readings: {exc}", kind="malformed"), []
        future = asyncio.run_coroutine_threadsafe(
            self.ingestor.submit_many(items, decoded), self.loop
        )
        try:
            outcomes = future.result(INGEST_SECONDS)
        except Exception as exc:
            log.exception("mesh: a batch could not be logged")
            return Verdict(False, f"not logged: {exc!r}", kind="not-logged", blame=False), []
        receipts = [(o.leaf_hash, o.proof) for o in outcomes if isinstance(o, Accepted) and o.proof]
        messages = pack(receipts)
        for k, outcome in enumerate(outcomes):
            if isinstance(outcome, Problem):
                if outcome.slug in INVALID:
                    return Verdict(False, f"reading {k}: {outcome.detail}",
                                   kind="bad-reading"), messages  # fmt: skip
                # Not logged here (a device this node does not know, a replay, …), so
                # perhaps never checked: forged, or only not this node's to log?
                if not checked:
                    verdict = validate(READINGS, data, self.peer.keys)
                    if not verdict.accepted:
                        return verdict, messages
                return Verdict(False, f"reading {k}: {outcome.slug}: {outcome.detail}",
                               kind="not-logged", blame=False), messages  # fmt: skip
        return Verdict(True, items=len(items)), messages


async def gossip_checkpoints(peer: MeshPeer, latest: LatestCheckpoint, seconds: float) -> None:
    """Publish this node's latest signed checkpoint on the mesh whenever it changes
    (looked at every ``seconds``), for watchers that do not poll this node. A peer
    that cannot publish (stopped, say) is logged and tried again at the next change."""
    sent = ""
    while True:
        note = latest.get().note
        if note != sent:
            sent = note
            try:
                verdict = await asyncio.to_thread(peer.publish, CHECKPOINTS, note.encode())
            except InvalidMeshMessage as exc:
                log.warning("mesh: this node's checkpoint was not published: %s", exc)
            else:
                if not verdict.accepted:
                    log.error("mesh: this node's own checkpoint was refused: %s", verdict.reason)
        await asyncio.sleep(seconds)
