"""Partition survival: a device that reaches no node hands its outbox to a mesh
peer; a relay it knows passes the batches to a node on the mesh, the receipts
come back the same way, and every reading leaves the outbox only with a receipt
checked against the node's log key, exactly as over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.device import Device, Outbox, Uplink
from trustmesh.device._mesh import MeshRoute
from trustmesh.identity import PublicKey, SoftwareSigner, key_from_did
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.topics import READINGS, RECEIPTS
from trustmesh.mesh.validate import Keys

READINGS_SENT = 40


def test_a_partitioned_device_is_receipted_through_a_relay(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    node = start_node(epoch=0.5, mesh=True)
    assert node.info["mesh"], node.info
    log_key = NoteVerifier.from_vkey(node.info["verifier_key"])

    def device_key(did: str, seq: int) -> PublicKey | None:
        return key_from_did(did)

    def log_verifier(origin: str) -> LineVerifier | None:
        return log_key if origin == log_key.name else None

    keys = Keys(device_key, log_verifier)
    device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
    registered = httpx.post(f"{node.url}/v1/devices", json={"did": device.did}, timeout=60)
    assert registered.status_code == 200, registered.text
    relay, own = MeshPeer(keys).start(), MeshPeer(keys).start()
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        for topic in (READINGS, RECEIPTS):
            relay.subscribe(topic, lambda data: None)
        relay.connect(node.info["mesh"][0])
        own.connect(relay.addrs[0])  # the device knows the relay only
        uplink = Uplink(device, outbox, [MeshRoute(own, log_key)], max_wait=0.5)
        for k in range(READINGS_SENT):
            uplink.record("temperature", 20 + k % 7)
        wait_until(lambda: relay.peers(READINGS) >= 1, "the node's subscription at the relay")
        stop = threading.Event()
        worker = threading.Thread(target=uplink.drain, args=(stop,))
        worker.start()
        worker.join(120)
        stop.set()
        assert len(outbox) == 0, f"{len(outbox)} readings still queued"
        receipts = outbox.receipts()
        assert len(receipts) == READINGS_SENT
        assert {origin for origin, _ in receipts.values()} == {log_key.name}
        logged = httpx.get(f"{node.url}/v1/devices/{device.did}/readings",
                           params={"limit": "100"}, timeout=30).json()  # fmt: skip
        assert len(logged["readings"]) == READINGS_SENT, logged.keys()
        assert uplink.sent_to == {f"the mesh (for {log_key.name})": READINGS_SENT}
    finally:
        outbox.close()
        relay.close()
        own.close()
