"""A device's mesh peer bound to its did:key (:mod:`trustmesh.mesh.binding`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustmesh.device._device import Device
from trustmesh.device._uplink import Uplink
from trustmesh.mesh.binding import bind

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra: imported only by who runs a peer)
    from trustmesh.mesh.peer import MeshPeer


def bind_peer(device: Device, uplink: Uplink, peer: MeshPeer) -> bytes:
    """Bind ``peer``'s Ed25519 key to ``device``'s did:key (a P-256 key in a secure
    element cannot be a peer id): the binding reading, queued in the outbox, so that
    it is logged and receipted like any other."""
    entry = bind(device.signer, peer.public_key, seq=device.counter.reserve(), ts=device.clock())
    uplink.queue(entry)
    return entry
