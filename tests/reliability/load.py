"""What the reliability tests share: a node process that can be killed and
restarted on the same data and port, a fleet of devices loading it over HTTP
and MQTT, and the checks that the node kept its promises to them.

- :class:`NodeProcess`: ``trustmesh node run`` on one data directory and port.
- :class:`Fleet`: devices recording at a device's pace while a test breaks
  things, then draining their outboxes.
- :class:`Promises`: every signed checkpoint the fleet saw, in a receipt or
  served, and :meth:`Promises.check` that each is a prefix of the tree now.
- :func:`check_log`: offline, on the node's own data: every receipt verifies for
  the entry at its index, every signed reading is logged exactly once and in its
  device's order, and the chain's latest anchor is a tree of this log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from tests.cli.command import trustmesh
from tests.node.conftest import NODE_PASSWORD
from trustmesh.chain.client import ChainClient, rpc_web3
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


class NodeProcess:
    """``trustmesh node run`` on one data directory and one port, killed, stopped
    and started again at will. ``env``: more environment for the node."""

    def __init__(
        self, data_dir: Path, port: int, options: Sequence[str], env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.args = ["--data-dir", str(data_dir), "--port", str(port), "--verify-workers", "1",
                     *options]  # fmt: skip
        self.log = data_dir.with_name(data_dir.name + ".log")
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "TRUSTMESH_PASSWORD": NODE_PASSWORD, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    @property
    def db(self) -> str | Path:
        """Where its log is: the ``--db`` URL, or its data directory's SQLite file."""
        return self.args[self.args.index("--db") + 1] if "--db" in self.args else (
            self.data_dir / "log.db")  # fmt: skip

    def start(self) -> None:
        self.process, self.info = spawn_node(self.args, self.env, self.log)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no cleanup."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_node(self.process)
            self.process = None

    def size(self, http: httpx.Client) -> int:
        size: int = http.get(f"{self.url}/v1/log").json()["size"]
        return size

    def grows(self, http: httpx.Client, by: int) -> Callable[[], bool]:
        """A condition: the log holds ``by`` more entries than now."""
        target = self.size(http) + by
        return lambda: self.size(http) >= target


class Fleet:
    """Devices, each with its outbox and uplink, recording 10 readings a round at
    a device's pace on its own thread (over HTTP to the node, or through an MQTT
    broker) until :meth:`finish`, which drains every outbox. ``env``: more
    environment for registering them (on anvil: who pays their stake)."""

    def __init__(
        self,
        directory: Path,
        node: NodeProcess,
        routes: Sequence[str | MqttRoute],
        env: dict[str, str] | None = None,
    ) -> None:
        self.node = node
        self.devices: list[Device] = []
        self.outboxes: list[Outbox] = []
        self.uplinks: list[Uplink] = []
        for i, route in enumerate(routes):
            device = Device(SoftwareSigner.generate(), directory / f"device{i}.seq")
            outbox = Outbox(directory / f"outbox{i}.db")
            registered = trustmesh(
                "device", "register", "--did", device.did, "--node", node.url, env=env
            )
            assert registered.returncode == 0, registered.stderr.decode()
            self.devices.append(device)
            self.outboxes.append(outbox)
            self.uplinks.append(Uplink(device, outbox, [route], max_wait=0.5))
        self.recording = threading.Event()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(u,)) for u in self.uplinks]

    def start(self) -> Fleet:
        self.recording.set()
        for thread in self.threads:
            thread.start()
        return self

    def _run(self, uplink: Uplink) -> None:
        while self.recording.is_set() and not self.done.is_set():
            for i in range(10):
                uplink.record("temperature", 20 + i, unit="C")
            self.done.wait(uplink.backoff() if not uplink.flush() else 0.02)  # (a device's pace)
        uplink.drain(self.done)

    def finish(self, seconds: float = 120) -> None:
        """Stop recording; every outbox drains within ``seconds`` (or this fails)."""
        self.recording.clear()
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "a device did not drain its outbox"
        for outbox in self.outboxes:
            assert len(outbox) == 0 and not outbox.refused(), outbox.refused()

    def close(self) -> None:
        self.done.set()
        for thread in self.threads:
            if thread.ident is not None:
                thread.join(timeout=30)
        for uplink in self.uplinks:
            uplink.close()

    def signed(self) -> set[tuple[str, int]]:
        """(did, seq) of every reading the fleet's devices signed."""
        return {(d.did, seq) for d in self.devices for seq in range(1, d.counter.peek())}


class Promises:
    """What the node signed, as its clients saw it, and the checks that it holds."""

    def __init__(self, node: NodeProcess, http: httpx.Client) -> None:
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
        """Keep every checkpoint the node serves, while it runs (on a thread)."""
        while not stop.wait(0.05):
            try:
                answer = self.http.get(f"{self.node.url}/v1/checkpoint")
            except httpx.HTTPError:
                continue  # (killed, or starting)
            if answer.status_code == 200:
                self.saw(answer.text)

    def check(self, fleet: Fleet) -> None:
        """Every signed checkpoint, in a receipt or served, is a prefix of the tree
        served now. A device took each receipt only once its proof put its reading
        in that checkpoint's tree, so each receipt still verifies against the log."""
        for device, outbox in zip(fleet.devices, fleet.outboxes, strict=True):
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
            answer = self.http.get(
                f"{self.node.url}/v1/proof/consistency",
                params={"from": checkpoint.size, "to": current.size},
            )
            assert answer.status_code == 200, (checkpoint.size, current.size, answer.text)
            proof = answer.json()
            merkle.verify_consistency(
                checkpoint.size,
                current.size,
                checkpoint.root,
                current.root,
                [bytes.fromhex(h) for h in proof["hashes"]],
            )  # (raises InvalidProof: a signed tree the log no longer extends)
            self.checkpoints_checked += 1
        self.head = current


def check_log(node: NodeProcess, promises: Promises, fleet: Fleet, rpc: str | None = None) -> None:
    """Offline, on the stopped node's own data: each receipt verifies for the
    reading at its index, each reading a device signed is in the log exactly once
    and in its device's order, and the chain's latest anchor is a tree of this log.
    ``rpc``: the node's chain, if not the embedded one in its data directory."""
    assert set(promises.receipts) == fleet.signed(), "a signed reading has no receipt"
    store = open_store(node.db)
    with contextlib.ExitStack() as stack:
        stack.callback(store.close)
        if rpc is None:
            embedded = EmbeddedChain.open(node.data_dir)
            stack.callback(embedded.close)
            client = ChainClient(embedded.w3, embedded.dev_account)
        else:
            client = ChainClient(rpc_web3(rpc), Account.create())
        opened: dict[str, Checkpoint] = {}
        for (did, seq), text in promises.receipts.items():
            entry = store.entry(parse_tlog_proof(text).index)
            reading = parse_reading(entry)
            assert (reading.did, reading.seq) == (did, seq), "a receipt names another entry"
            open_receipt(text, merkle.leaf_hash(entry), promises.verifier, promises.origin,
                         opened=opened)  # fmt: skip
        for device in fleet.devices:
            signed = device.counter.peek() - 1
            entries = store.device_entries(device.did, 10 * signed)
            assert sorted(seq for seq, _ in entries) == list(range(1, signed + 1)), (
                "a reading lost, or logged twice"
            )
            in_seq_order = [index for _, index in sorted(entries)]
            assert in_seq_order == sorted(in_seq_order), "a device's readings logged out of order"
        deployment = Deployment.load(node.data_dir, client.chain_id)
        assert deployment is not None
        size, root, _, _ = LogAnchor(client, deployment).latest(promises.origin)
        assert 0 < size <= store.size and store.root(size) == root
