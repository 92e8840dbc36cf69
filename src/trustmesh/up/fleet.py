"""A simulated fleet: devices with realistic sensors, sending through the device
SDK (durable outbox, failover between nodes, receipts forwarded to the
watcher), and a few that misbehave in the ways the system must stop:

- ``tampered``: readings altered after signing (the node refuses them, 422);
- ``replay``: an old seq sent again with a new payload (the node refuses, 409);
- ``equivocation``: one seq, two payloads, one to each of two nodes (both logs
  take theirs; the watcher catches it and proves it on-chain: slashed);
- ``sybil``: new identities registered without stake (the Registry refuses).

Every few ticks each device also challenges its neighbours (the devices on the
same gateway, as a radio cell would be): it logs a ``challenge`` with its
measurement of the ambient temperature where it stands, and they answer with
witness readings of their own (:mod:`trustmesh.reputation.witness`). The
misbehaving devices misreport in their challenges, so their neighbours disagree
and the nodes' reputation tables rank them last.

Keys, seq counters and outboxes live under ``<data dir>/fleet``, so a rerun
continues the same devices.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from trustmesh._paths import private_dir
from trustmesh.device import Device, Outbox, Uplink, bind_peer
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.reading import sign_reading
from trustmesh.reputation.witness import challenge_fields, witness_fields

BEHAVIOURS = ("equivocation", "tampered", "replay", "sybil")  # the first K misbehave
SENSORS = ("temperature", "humidity", "power", "gps")
COSE = {"content-type": "application/cose"}
WITNESS_EVERY = 5  # ticks between a device's challenges
SPACING_M = 400  # devices stand on a grid, this far apart
MISREPORT = 8.0  # what a misbehaving device adds to its challenge's measurement


def ambient(pos: tuple[int, int], now: float) -> float:
    """The ambient temperature at ``pos`` (metres): smooth in space and time."""
    return 18 + 4 * math.sin(now / 900) + pos[0] / 1000 - pos[1] / 2000


def _signer(path: Path) -> SoftwareSigner:
    if path.exists():
        return SoftwareSigner.from_private_bytes(Alg.ES256, path.read_bytes())
    signer = SoftwareSigner.generate()
    path.write_bytes(signer.private_bytes())
    path.chmod(0o600)
    return signer


@dataclass
class SimDevice:
    number: int
    sensor: str
    behaviour: str  # "honest" or one of BEHAVIOURS
    device: Device
    uplink: Uplink
    lat: float = 48.85
    lon: float = 2.35

    @property
    def pos(self) -> tuple[int, int]:
        return SPACING_M * (self.number % 4), SPACING_M * (self.number // 4)

    @property
    def did(self) -> str:
        return self.device.did

    def measure(self, now: float, rng: random.Random) -> tuple[float, str, dict[str, Any] | None]:
        phase = now / 600 + self.number
        if self.sensor == "temperature":
            return round(20 + 5 * math.sin(phase) + rng.gauss(0, 0.3), 2), "C", None
        if self.sensor == "humidity":
            return round(55 + 15 * math.sin(phase / 2) + rng.gauss(0, 1), 1), "%", None
        if self.sensor == "power":
            return round(max(0.0, 1.5 + math.sin(phase * 3) + rng.gauss(0, 0.2)), 3), "kW", None
        self.lat += rng.gauss(0, 0.0002)
        self.lon += rng.gauss(0, 0.0002)
        return round(self.lat, 6), "deg", {"lon": round(self.lon, 6)}


class Fleet:
    def __init__(
        self,
        data_dir: Path,
        nodes: list[str],
        watcher: str | None,
        *,
        devices: int = 20,
        malicious: int = 2,
        interval: float = 1.0,
        seed: int = 1,
        partitioned: int = 0,
    ) -> None:
        """``partitioned``: the last devices (honest ones) reach no node but through
        the mesh (a neighbour's peer relays their batches and receipts)."""
        if not 0 <= malicious <= devices:
            raise ValueError("malicious devices must be between 0 and the fleet's size")
        if not 0 <= partitioned <= devices - malicious:
            raise ValueError("partitioned devices must be honest ones")
        self.nodes = nodes
        self.interval = interval
        self.rng = random.Random(seed)
        self.http = httpx.Client(timeout=10)
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        directory = data_dir / "fleet"
        private_dir(directory)
        self.devices: list[SimDevice] = []
        self.mesh: Any = None  # FleetMesh, when some devices are partitioned
        if partitioned:
            from trustmesh.up.fleet_mesh import FleetMesh  # (libp2p: the 'mesh' extra)

            self.mesh = FleetMesh(nodes, self.http)
        for number in range(devices):
            signer = _signer(directory / f"device{number}.key")
            device = Device(signer, directory / f"device{number}.seq")
            preferred: list[Any] = nodes[number % len(nodes) :] + nodes[: number % len(nodes)]
            cut_off = number >= devices - partitioned
            if cut_off:  # no way to a node (nor to the watcher) but the mesh
                preferred = [self.mesh.route(preferred[0])]
            uplink = Uplink(
                device,
                Outbox(directory / f"device{number}.outbox"),
                preferred,
                watchers=[watcher] if watcher and not cut_off else [],
                http=self.http,
            )
            if cut_off:  # its mesh peer's key, bound to its did:key (logged like a reading)
                bind_peer(device, uplink, preferred[0].peer)
            behaviour = BEHAVIOURS[number % len(BEHAVIOURS)] if number < malicious else "honest"
            self.devices.append(
                SimDevice(number, SENSORS[number % len(SENSORS)], behaviour, device, uplink)
            )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)

    def register(self) -> None:
        """Register every device not yet registered (the first node funds it)."""
        for sim in self.devices:
            answer = self.http.get(f"{self.nodes[0]}/v1/devices/{sim.did}")
            if answer.status_code == 200:
                continue
            answer = self.http.post(f"{self.nodes[0]}/v1/devices", json={"did": sim.did})
            answer.raise_for_status()
            self._count("registered")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.http.close()
        for sim in self.devices:
            sim.uplink.close()
            sim.uplink.outbox.close()
        if self.mesh is not None:
            self.mesh.close()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            stats = dict(self.stats)
        if self.mesh is not None:
            stats["receipted over the mesh"] = sum(
                sim.uplink.sent_over_mesh for sim in self.devices
            )
        return stats

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[key] += amount

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):  # the fleet's reading cadence
            tick += 1
            for sim in self.devices:
                try:
                    if (tick + sim.number) % WITNESS_EVERY == 0:
                        self._challenge(sim)
                    self._step(sim, tick)
                except (httpx.HTTPError, ValueError, OSError) as exc:
                    self._count(f"error: {type(exc).__name__}")

    def _challenge(self, sim: SimDevice) -> None:
        """``sim`` challenges its cell; each neighbour queues its witness reading."""
        now = time.time()
        claimed = ambient(sim.pos, now) + (MISREPORT if sim.behaviour != "honest" else 0.0)
        challenge = sim.device.sign(
            "challenge", round(claimed, 2), unit="C", extra=challenge_fields(sim.pos)
        )
        sim.uplink.queue(challenge)
        cell = sim.number % len(self.nodes)
        for other in self.devices:
            if other is not sim and other.number % len(self.nodes) == cell:
                measured = round(ambient(other.pos, now) + self.rng.gauss(0, 0.2), 2)
                extra = witness_fields(challenge, sim.did, other.pos)
                other.uplink.queue(other.device.sign("witness", measured, unit="C", extra=extra))
        self._count("challenges")

    def _step(self, sim: SimDevice, tick: int) -> None:
        value, unit, extra = sim.measure(time.time(), self.rng)
        if sim.behaviour == "honest" or tick % 5:
            sim.uplink.record(sim.sensor, value, unit, extra)
            self._count("receipted", sim.uplink.flush())
            return
        getattr(self, f"_{sim.behaviour}")(sim, value, unit)

    def _post(self, node: str, entry: bytes, refused: str) -> None:
        answer = self.http.post(f"{node}/v1/readings", content=entry, headers=COSE)
        self._count(refused if answer.status_code >= 400 else f"{refused} (accepted!)")

    def _tampered(self, sim: SimDevice, value: float, unit: str) -> None:
        entry = bytearray(sim.device.sign(sim.sensor, value, unit=unit))
        entry[-1] ^= 1
        self._post(self.nodes[sim.number % len(self.nodes)], bytes(entry), "refused: tampered")

    def _replay(self, sim: SimDevice, value: float, unit: str) -> None:
        # what it queued first (witness readings too), so that the seq replayed is logged
        self._count("receipted", sim.uplink.flush())
        seq = max(sim.device.counter.peek() - 1, 0)
        entry = sign_reading(
            sim.device.signer, seq=seq, ts=sim.device.clock(), sensor=sim.sensor,
            value=value + 1, unit=unit,
        )  # fmt: skip
        self._post(self.nodes[sim.number % len(self.nodes)], entry, "refused: replay")

    def _equivocation(self, sim: SimDevice, value: float, unit: str) -> None:
        if len(self.nodes) < 2:
            return
        seq = sim.device.counter.reserve()
        now = sim.device.clock()
        for node, reported in zip(self.nodes[:2], (value, value + 10), strict=True):
            entry = sign_reading(
                sim.device.signer, seq=seq, ts=now, sensor=sim.sensor, value=reported, unit=unit
            )
            answer = self.http.post(f"{node}/v1/readings", content=entry, headers=COSE)
            self._count("equivocations sent" if answer.status_code == 200 else "refused")

    def _sybil(self, sim: SimDevice, value: float, unit: str) -> None:
        did = did_from_key(SoftwareSigner.generate().public_key)
        answer = self.http.post(f"{self.nodes[0]}/v1/devices", json={"did": did, "stake": 0})
        self._count("refused: sybil" if answer.status_code >= 400 else "sybil registered!")
