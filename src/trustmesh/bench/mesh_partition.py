"""A fleet partitioned and healed, readings counted (part of ``trustmesh bench mesh``).

Ten devices record a reading each ``interval`` and send it at once, as an uplink
does. For ``seconds``, 30% of them reach no node (their HTTP route points
nowhere) but a neighbour's relay on the mesh; then the partition heals, the
fleet records a little longer, and every outbox drains. Every reading recorded
must end logged, with a verified receipt: the figure is what was lost.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from trustmesh.device import Device, MeshRoute, Outbox, Uplink
from trustmesh.identity import SoftwareSigner
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.relay import Relay
from trustmesh.mesh.validate import Keys, did_key

__all__ = ["partition"]

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens
HEALED_SECONDS = 5.0  # recording goes on this long after the partition heals
SHARE = 0.3


def partition(info: dict[str, Any], directory: Path, seconds: float, devices: int = 10,
              interval: float = 1.0) -> dict[str, Any]:  # fmt: skip
    url = info["url"]
    log_key = NoteVerifier.from_vkey(info["verifier_key"])

    def log(origin: str) -> LineVerifier | None:
        return log_key if origin == log_key.name else None

    keys = Keys(did_key, log)
    relay = MeshPeer(keys).start()
    peers = [relay]
    fleet: list[tuple[Device, Outbox, Uplink]] = []
    cut = max(1, round(devices * SHARE))
    try:
        Relay(relay).start()
        relay.connect(info["mesh"][0])
        for k in range(devices):
            device = Device(SoftwareSigner.generate(), directory / f"p{k}.seq")
            httpx.post(f"{url}/v1/devices", json={"did": device.did},
                       timeout=60).raise_for_status()  # fmt: skip
            outbox = Outbox(directory / f"p{k}.db")
            routes: list[str | MeshRoute] = [url]
            if k < cut:
                peers.append(own := MeshPeer(keys).start())
                own.connect(relay.addrs[0])
                routes = [UNREACHABLE, MeshRoute(own, log_key)]
            fleet.append((device, outbox, Uplink(device, outbox, routes, max_wait=1.0)))
        recorded = _record(fleet, seconds, interval, cut, url)
        for _device, _outbox, uplink in fleet:
            uplink.drain(_deadline(120))
        logged = sum(_logged(url, device.did) for device, _o, _u in fleet)
        over_mesh = sum(uplink.sent_over_mesh for _d, _o, uplink in fleet)
        receipted = sum(len(outbox.receipts()) for _d, outbox, _u in fleet)
        return {
            "devices": devices,
            "partitioned": cut,
            "partition_seconds": seconds,
            "recorded": recorded,
            "receipted_over_the_mesh": over_mesh,
            "receipted": receipted,
            "logged": logged,
            "still_queued": sum(len(outbox) for _d, outbox, _u in fleet),
            "lost": recorded - logged,
        }
    finally:
        for _device, outbox, uplink in fleet:
            uplink.close()
            outbox.close()
        for peer in peers:
            peer.close()


def _record(fleet: list[tuple[Device, Outbox, Uplink]], seconds: float, interval: float,
            cut: int, url: str) -> int:  # fmt: skip
    """Every device records and sends each ``interval``; the first ``cut`` reach the
    node ``url`` only after ``seconds`` (healed), and all go on ``HEALED_SECONDS``
    more. How many readings were recorded."""
    stop, healed, counts = threading.Event(), threading.Event(), [0] * len(fleet)

    def work(k: int, uplink: Uplink) -> None:
        while not stop.wait(interval):  # the device's reading cadence
            if k < cut and healed.is_set() and uplink.nodes[0] != url:
                uplink.nodes.insert(0, url)  # healed: the node is reachable again
            uplink.record("temperature", 20 + k % 7)
            counts[k] += 1
            uplink.flush()

    threads = [threading.Thread(target=work, args=(k, u)) for k, (_d, _o, u) in enumerate(fleet)]
    for thread in threads:
        thread.start()
    try:
        stop.wait(seconds)  # the partition's span (what is measured), then the heal
        healed.set()
        stop.wait(HEALED_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    return sum(counts)


def _deadline(seconds: float) -> threading.Event:
    """An event set after ``seconds``: a drain's bound."""
    event = threading.Event()
    timer = threading.Timer(seconds, event.set)
    timer.daemon = True
    timer.start()
    return event


def _logged(url: str, did: str) -> int:
    answer = httpx.get(f"{url}/v1/devices/{did}/readings", params={"limit": "1000"}, timeout=30)
    answer.raise_for_status()
    return len(answer.json()["readings"])
