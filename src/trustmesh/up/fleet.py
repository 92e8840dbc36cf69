"""A simulated fleet: devices with realistic sensors, sending through the device
SDK (durable outbox, failover between nodes, receipts forwarded to the
watcher), and a few that misbehave in the ways the system must stop:

- ``tampered``: readings altered after signing (the node refuses them, 422);
- ``replay``: an old seq sent again with a new payload (the node refuses, 409);
- ``equivocation``: one seq, two payloads, one to each of two nodes (both logs
  take theirs; the watcher catches it and proves it on-chain: slashed);
- ``sybil``: new identities registered without stake (the Registry refuses).

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

from trustmesh.device import Device, Outbox, Uplink
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.reading import sign_reading

BEHAVIOURS = ("equivocation", "tampered", "replay", "sybil")  # the first K misbehave
SENSORS = ("temperature", "humidity", "power", "gps")
COSE = {"content-type": "application/cose"}


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
    ) -> None:
        if not 0 <= malicious <= devices:
            raise ValueError("malicious devices must be between 0 and the fleet's size")
        self.nodes = nodes
        self.interval = interval
        self.rng = random.Random(seed)
        self.http = httpx.Client(timeout=10)
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        directory = data_dir / "fleet"
        directory.mkdir(parents=True, exist_ok=True)
        self.devices: list[SimDevice] = []
        for number in range(devices):
            signer = _signer(directory / f"device{number}.key")
            device = Device(signer, directory / f"device{number}.seq")
            preferred = nodes[number % len(nodes) :] + nodes[: number % len(nodes)]
            uplink = Uplink(
                device,
                Outbox(directory / f"device{number}.outbox"),
                preferred,
                watchers=[watcher] if watcher else [],
                http=self.http,
            )
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
            sim.uplink.outbox.close()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.stats)

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[key] += amount

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):  # the fleet's reading cadence
            tick += 1
            for sim in self.devices:
                try:
                    self._step(sim, tick)
                except (httpx.HTTPError, ValueError, OSError) as exc:
                    self._count(f"error: {type(exc).__name__}")

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
