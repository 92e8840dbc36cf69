"""Crash consistency: a node under load from devices over HTTP and MQTT, on SQLite
and on PostgreSQL, with its embedded chain in the same process, killed with
SIGKILL at random points and restarted on the same data, again and again.

After each restart every checkpoint it ever signed (in a receipt, or served while
a poller watched) is a prefix of the tree it serves now, so every receipt it ever
issued still verifies: nothing acknowledged was lost or rewritten. At the end the
device outboxes are empty, every receipt verifies for the entry at its index, no
(did, seq) is in the log twice, every reading a device signed is in it, and the
anchor on the chain (killed with the node, mid-block or not) agrees with the tree.

``TRUSTMESH_CRASH_KILLS`` kills per store (default 5, so 10 a run; the full run
documented in the README: 25, so 50)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_cli import trustmesh
from tests.node.conftest import NODE_PASSWORD
from tests.services import free_port, fresh_database, wait_until
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import Deployment, LogAnchor
from trustmesh.device import Device, MqttRoute, Outbox, Uplink
from trustmesh.identity import SoftwareSigner
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.log.receipt import open_receipt
from trustmesh.log.store import open_store
from trustmesh.log.tlog_proof import parse_tlog_proof
from trustmesh.reading import parse_reading
from trustmesh.up.network import spawn_node, stop_node

KILLS = int(os.environ.get("TRUSTMESH_CRASH_KILLS", "5"))
HTTP_DEVICES, MQTT_DEVICES = 3, 1


class CrashingNode:
    """``trustmesh node run`` on one data directory and one port, killed and
    restarted at will."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.args, self.log = args, log
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "TRUSTMESH_PASSWORD": NODE_PASSWORD}
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        self.process, self.info = spawn_node(self.args, self.env, self.log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def stop(self) -> None:
        if self.process is not None:
            stop_node(self.process)


class Promises:
    """What the node signed, as its clients saw it, and the checks that it holds."""

    def __init__(self, node: CrashingNode, http: httpx.Client) -> None:
        self.node, self.http = node, http
        self.verifier = NoteVerifier.from_vkey(node.info["verifier_key"])
        self.origin: str = node.info["origin"]
        self.notes: set[str] = set()  # signed checkpoints, not yet checked against a head
        self.head: Checkpoint | None = None  # the last tree all earlier ones agreed with
        self.lock = threading.Lock()
        self.receipts: dict[tuple[str, int], str] = {}  # (did, seq): its receipt
        self.checkpoints_checked = 0

    def saw(self, note: str) -> None:
        with self.lock:
            self.notes.add(note)

    def poll(self, stop: threading.Event) -> None:
        """Keep every checkpoint the node serves, while it runs."""
        while not stop.wait(0.05):
            try:
                answer = self.http.get(f"{self.node.url}/v1/checkpoint")
            except httpx.HTTPError:
                continue  # (killed, or starting)
            if answer.status_code == 200:
                self.saw(answer.text)

    def check(self, devices: list[tuple[Device, Outbox]]) -> None:
        """Every signed checkpoint, in a receipt or served, is a prefix of the tree
        served now. A device took each receipt only once its proof put its reading
        in that checkpoint's tree, so each receipt still verifies against the log."""
        for device, outbox in devices:
            for seq, (origin, text) in outbox.receipts().items():
                if (device.did, seq) not in self.receipts:
                    assert origin == self.origin
                    self.receipts[device.did, seq] = text
                    self.saw(parse_tlog_proof(text).checkpoint)
        current = open_checkpoint(
            self.http.get(f"{self.node.url}/v1/checkpoint").text, self.verifier, self.origin
        )
        with self.lock:
            notes, self.notes = self.notes, set()
        older = [open_checkpoint(note, self.verifier, self.origin) for note in notes]
        if self.head is not None:
            older.append(self.head)
        for checkpoint in older:
            assert checkpoint.size <= current.size, "the tree shrank: history was lost"
            proof = self.http.get(
                f"{self.node.url}/v1/proof/consistency",
                params={"from": checkpoint.size, "to": current.size},
            ).json()
            merkle.verify_consistency(
                checkpoint.size,
                current.size,
                checkpoint.root,
                current.root,
                [bytes.fromhex(h) for h in proof["hashes"]],
            )  # (raises InvalidProof: a signed tree the log no longer extends)
            self.checkpoints_checked += 1
        self.head = current


def _size(http: httpx.Client, node: CrashingNode) -> int:
    size: int = http.get(f"{node.url}/v1/log").json()["size"]
    return size


def _grows(http: httpx.Client, node: CrashingNode, by: int) -> Callable[[], bool]:
    """A condition: the log holds ``by`` more entries than now."""
    target = _size(http, node) + by
    return lambda: _size(http, node) >= target


def _devices(tmp_path: Path, count: int) -> Iterator[tuple[Device, Outbox]]:
    for i in range(count):
        device = Device(SoftwareSigner.generate(), tmp_path / f"device{i}.seq")
        yield device, Outbox(tmp_path / f"outbox{i}.db")


def _run_device(uplink: Uplink, recording: threading.Event, done: threading.Event) -> None:
    """Record and send while ``recording`` is set, then drain (until ``done``)."""
    while recording.is_set() and not done.is_set():
        for i in range(10):
            uplink.record("temperature", 20 + i, unit="C")
        done.wait(uplink.backoff() if not uplink.flush() else 0.02)  # (a device's pace)
    uplink.drain(done)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_node_killed_at_random_keeps_every_promise(
    store: str, tmp_path: Path, request: pytest.FixtureRequest, mqtt_url: str
) -> None:
    rng = random.Random(f"crash/{store}")
    port = free_port()
    data_dir = tmp_path / "node"
    args = ["--data-dir", str(data_dir), "--port", str(port), "--epoch", "0.5",
            "--verify-workers", "1", "--mqtt", mqtt_url]  # fmt: skip
    if store == "postgres":
        args += ["--db", fresh_database(request.getfixturevalue("postgres_url"))]
    node = CrashingNode(args, port, tmp_path / "node.log")
    stop = threading.Event()
    threads: list[threading.Thread] = []
    uplinks: list[Uplink] = []
    try:
        node.start()
        devices = list(_devices(tmp_path, HTTP_DEVICES + MQTT_DEVICES))
        for device, _ in devices:
            registered = trustmesh("device", "register", "--did", device.did, "--node", node.url)
            assert registered.returncode == 0, registered.stderr.decode()
        with httpx.Client(timeout=10) as http:
            promises = Promises(node, http)
            recording = threading.Event()
            recording.set()
            for i, (device, outbox) in enumerate(devices):
                route: str | MqttRoute = (
                    node.url if i < HTTP_DEVICES else MqttRoute(mqtt_url, node.url)
                )
                uplink = Uplink(device, outbox, [route], max_wait=0.5)
                uplinks.append(uplink)
                threads.append(threading.Thread(target=_run_device, args=(uplink, recording, stop)))
            threads.append(threading.Thread(target=promises.poll, args=(stop,)))
            for thread in threads:
                thread.start()

            for kill in range(KILLS):
                wait_until(_grows(http, node, 50), f"load before kill {kill}")
                time.sleep(rng.uniform(0, 0.5))  # the random point of the kill, not a wait
                node.kill()
                node.start()
                promises.check(devices)

            recording.clear()
            deadline = time.monotonic() + 120
            for thread in threads[:-1]:
                thread.join(timeout=max(1.0, deadline - time.monotonic()))
            assert not any(t.is_alive() for t in threads[:-1]), "a device did not drain"
            promises.check(devices)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for uplink in uplinks:
            uplink.close()
        node.stop()
    for _, outbox in devices:
        assert len(outbox) == 0 and not outbox.refused()
    signed = {(d.did, seq) for d, _ in devices for seq in range(1, d.counter.peek())}
    assert set(promises.receipts) == signed, "a signed reading has no receipt"
    _check_the_log(data_dir, args, promises, devices)
    print(f"{store}: {KILLS} kills, {len(signed)} receipts checked, "
          f"{promises.checkpoints_checked} checkpoint consistency checks")  # fmt: skip


def _check_the_log(
    data_dir: Path, args: list[str], promises: Promises, devices: list[tuple[Device, Outbox]]
) -> None:
    """Offline, on the node's own data: each receipt verifies for the reading at
    its index, each reading a device signed is in the log exactly once, and the
    chain's latest anchor is a tree of this log."""
    store = open_store(args[args.index("--db") + 1] if "--db" in args else data_dir / "log.db")
    chain = EmbeddedChain.open(data_dir)
    verifier, origin = promises.verifier, promises.origin
    try:
        opened: dict[str, Checkpoint] = {}
        for (did, seq), text in promises.receipts.items():
            entry = store.entry(parse_tlog_proof(text).index)
            reading = parse_reading(entry)
            assert (reading.did, reading.seq) == (did, seq), "a receipt names another entry"
            open_receipt(text, merkle.leaf_hash(entry), verifier, origin, opened=opened)
        for device, _ in devices:
            signed = device.counter.peek() - 1
            entries = store.device_entries(device.did, 10 * signed)
            assert sorted(seq for seq, _ in entries) == list(range(1, signed + 1)), (
                "a reading lost, or logged twice"
            )
        client = ChainClient(chain.w3, chain.dev_account)
        deployment = Deployment.load(data_dir, client.chain_id)
        assert deployment is not None
        size, root, _, _ = LogAnchor(client, deployment).latest(origin)
        assert 0 < size <= store.size and store.root(size) == root
    finally:
        chain.close()
        store.close()
