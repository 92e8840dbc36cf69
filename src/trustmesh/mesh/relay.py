"""A device's batch passed peer to peer on streams, its receipts back the same way.

Gossip carries a batch to every peer of the readings topic, each hop a pubsub
message (~3 ms of py-libp2p work a hop here, against ~1 ms on a stream). Where
the way to a node is short, a device asks instead: it opens a stream to a peer on
the relay protocol (:data:`~trustmesh.mesh.topics.RELAY`) and sends its batch,
after one byte of hops left; a relay checks every reading's signature (as the
readings topic's validator does), asks its own peers in turn with one hop fewer,
checks the receipts messages that come back (as the receipts topic's validator
does) and answers with them; a node logs the batch and answers with its
receipts. A peer that cannot help answers nothing, and the device publishes the
batch on the readings topic as before: the stream is a shortcut, not a second
way to lose a reading (a reading leaves the outbox only with a checked receipt,
whichever way it came).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustmesh.errors import InvalidMeshMessage
from trustmesh.mesh.topics import READINGS, RECEIPTS
from trustmesh.mesh.validate import Verdict

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra)
    from trustmesh.mesh.peer import MeshPeer

__all__ = ["HOPS", "Relay", "batch_of", "request"]

HOPS = 3  # relays a device's request may pass, at most (a node answers at any count)
ASK_SECONDS = 10.0  # a relay's wait for its peers' answer


def request(batch: bytes, hops: int = HOPS) -> bytes:
    """A request for ``batch``'s receipts, to pass at most ``hops`` more relays."""
    return bytes([hops]) + batch


def batch_of(data: bytes) -> tuple[int, bytes]:
    """(hops left, the batch) of a request; InvalidMeshMessage if it is none."""
    if len(data) < 2 or data[0] > HOPS:
        raise InvalidMeshMessage(f"not a relay request: hops {data[:1].hex()}, then a batch")
    return data[0], data[1:]


class Relay:
    """A peer that passes devices' batches on towards a node, and their receipts
    back (a gateway, another device): on the readings and receipts topics, and on
    the relay protocol. ``Relay(peer).start()``."""

    def __init__(self, peer: MeshPeer, ask_seconds: float = ASK_SECONDS) -> None:
        self.peer, self.ask_seconds = peer, ask_seconds

    def start(self) -> Relay:
        for topic in (READINGS, RECEIPTS):
            self.peer.subscribe(topic, None)  # (validated and passed on, handed to no one)
        self.peer.serve(self.serve)
        return self

    def serve(self, asker: str, data: bytes) -> tuple[Verdict, list[bytes]]:
        try:
            hops, batch = batch_of(data)
        except InvalidMeshMessage as exc:
            return Verdict(False, str(exc), kind="malformed"), []
        if hops == 0:
            return Verdict(False, "no relay hops left", kind="no-route", blame=False), []
        checked = self.peer.check(READINGS, batch)
        if not checked.accepted:
            return checked, []
        answers = self.peer.ask(request(batch, hops - 1), timeout=self.ask_seconds, skip=asker)
        receipts = [answer for answer in answers if self.peer.check(RECEIPTS, answer).accepted]
        if not receipts:
            return Verdict(False, "no receipts from a node", kind="no-route", blame=False), []
        return checked, receipts
