"""Sending readings over the libp2p mesh, for a device that reaches no node: its
batch asked for on a relay stream (:mod:`trustmesh.mesh.relay`: a neighbour
passes it on to a node, the receipts come back on the stream), else published on
the readings topic (peers relay it to a node) and its receipts taken from the
receipts topic. Every receipt is checked (as the receipts topic's validator
checks it, and again by the uplink before a reading leaves the outbox) with the
log key of the node the route names, known before the partition (from the node
or the Registry); nothing else that comes back is believed."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustmesh.device._answers import gather
from trustmesh.log import merkle
from trustmesh.log.note import NoteVerifier
from trustmesh.log.tlog_proof import TlogProof, format_tlog_proof
from trustmesh.mesh.receipts import unpack
from trustmesh.mesh.relay import request
from trustmesh.mesh.topics import READINGS, RECEIPTS, message_id

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra: imported only by who runs a peer)
    from trustmesh.mesh.peer import MeshPeer

MESH_TIMEOUT = 15.0
MESH = "the mesh"  # how a mesh route names itself (Uplink.sent_to counts by name)
SENT_KEPT = 1_000  # batches whose sends are remembered (to vary a resend)
# Resends in a row that differ: each round waits MESH_TIMEOUT, so the 17th comes
# long after gossip's seen cache (120 s) forgot the first.
RESEND_VARIANTS = 16


@dataclass(frozen=True, eq=False)
class MeshRoute:
    peer: MeshPeer  # this device's mesh peer, connected to some others
    node: NoteVerifier = field(compare=False)  # the log key of the node expected to log

    def __str__(self) -> str:
        return f"{MESH} (for {self.node.name})"


class MeshLink:
    """A route's receipts, as they come over the mesh."""

    def __init__(self, route: MeshRoute, timeout: float = MESH_TIMEOUT) -> None:
        self.route, self.timeout = route, timeout
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._sent: dict[bytes, int] = {}  # a batch's message id → times it was sent
        route.peer.subscribe(RECEIPTS, self._take)
        route.peer.subscribe(READINGS, None)  # (relays others' batches too)

    def _take(self, data: bytes) -> None:
        for leaf, proof in self._own(data):  # (the topic's validator checked every receipt)
            self.answers.put({"leaf": leaf, "proof": proof})

    def _own(self, data: bytes) -> list[tuple[bytes, TlogProof]]:
        """A receipts message's receipts, if they are of the node this route names
        (every node that hears a batch logs it: another's are not this route's)."""
        origin, receipts = unpack(data)
        return receipts if origin == self.route.node.name else []

    def exchange(self, entries: list[bytes]) -> dict[str, dict[str, Any]]:
        """Ask for ``entries``' receipts as one batch on streams (a peer that passes
        it on to a node, :mod:`trustmesh.mesh.relay`), else publish it; their
        receipts by leaf hash (hex), as the node's answers shape them, for what
        came within the timeout."""
        wanted = {merkle.leaf_hash(e).hex() for e in entries}
        found = self._ask(b"".join(entries))
        if found:
            found = {leaf: item for leaf, item in found.items() if leaf in wanted}
        else:
            found = self._publish(entries, wanted)
        encoded: dict[bytes, str] = {}  # (a batch's proofs share most of their hashes)
        return {leaf: {"proof": _text(item["proof"], encoded), "index": item["proof"].index}
                for leaf, item in found.items()}  # fmt: skip

    def _ask(self, batch: bytes) -> dict[str, dict[str, Any]]:
        """A batch's receipts asked for on the relay protocol, by leaf hash (hex),
        each message checked as the receipts topic's validator checks it ({}: no
        peer could help)."""
        found: dict[str, dict[str, Any]] = {}
        for answer in self.route.peer.ask(request(batch), timeout=self.timeout):
            if self.route.peer.check(RECEIPTS, answer).accepted:
                for leaf, proof in self._own(answer):
                    found[leaf.hex()] = {"leaf": leaf, "proof": proof}
        return found

    def _publish(self, entries: list[bytes], wanted: set[str]) -> dict[str, dict[str, Any]]:
        """A batch published on the readings topic; its receipts as they come."""
        batch = message_id(b"".join(entries))
        tries = self._sent.pop(batch, 0)
        # The same bytes again would be dropped as a replay (gossip's seen-messages
        # cache, minutes long), and the node takes a device's readings in seq order
        # only: a resend leads with its first reading repeated (a duplicate, answered
        # with the same receipt), a new message of the same readings in order.
        message = entries[0] * (tries % RESEND_VARIANTS) + b"".join(entries)
        self._sent[batch] = tries + 1
        if len(self._sent) > SENT_KEPT:
            self._sent.pop(next(iter(self._sent)))
        verdict = self.route.peer.publish(READINGS, message, trusted=True)  # (its own readings)
        if not verdict.accepted:
            raise ValueError(f"the mesh refuses this batch: {verdict.reason}")
        return gather(self.answers, wanted, self.timeout, lambda item: bytes(item["leaf"]).hex())


def _text(proof: TlogProof, encoded: dict[bytes, str]) -> str:
    return format_tlog_proof(proof.index, proof.hashes, proof.checkpoint, proof.extra,
                             encoded=encoded)  # fmt: skip
