"""Sending readings over the libp2p mesh, for a device that reaches no node: its
batch published on the readings topic (peers relay it to a node), its receipts
taken from the receipts topic. Every receipt is checked (by the peer's validator,
and again by the uplink before a reading leaves the outbox) with the log key of
the node the route names, known before the partition (from the node or the
Registry); nothing else that comes back is believed."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustmesh.device._answers import gather
from trustmesh.log import merkle
from trustmesh.log.note import NoteVerifier
from trustmesh.log.tlog_proof import parse_tlog_proof
from trustmesh.mesh.receipts import unpack
from trustmesh.mesh.topics import READINGS, RECEIPTS

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra: imported only by who runs a peer)
    from trustmesh.mesh.peer import MeshPeer

MESH_TIMEOUT = 15.0


@dataclass(frozen=True, eq=False)
class MeshRoute:
    peer: MeshPeer  # this device's mesh peer, connected to some others
    node: NoteVerifier = field(compare=False)  # the log key of the node expected to log

    def __str__(self) -> str:
        return f"the mesh (for {self.node.name})"


class MeshLink:
    """A route's receipts, as they come over the mesh."""

    def __init__(self, route: MeshRoute, timeout: float = MESH_TIMEOUT) -> None:
        self.route, self.timeout = route, timeout
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        route.peer.subscribe(RECEIPTS, self._take)
        route.peer.subscribe(READINGS, lambda data: None)  # (relays others' batches too)

    def _take(self, data: bytes) -> None:
        _, receipts = unpack(data)  # the topic's validator has checked every receipt
        for leaf, text in receipts:
            self.answers.put({"leaf": leaf, "proof": text})

    def exchange(self, entries: list[bytes]) -> dict[str, dict[str, Any]]:
        """Publish ``entries`` as one batch; their receipts by leaf hash (hex), as the
        node's answers shape them, for what came within the timeout."""
        verdict = self.route.peer.publish(READINGS, b"".join(entries))
        if not verdict.accepted:
            raise ValueError(f"the mesh refuses this batch: {verdict.reason}")
        wanted = {merkle.leaf_hash(e).hex() for e in entries}
        found = gather(self.answers, wanted, self.timeout, lambda item: bytes(item["leaf"]).hex())
        return {
            leaf: {"proof": str(item["proof"]), "index": parse_tlog_proof(str(item["proof"])).index}
            for leaf, item in found.items()
        }
