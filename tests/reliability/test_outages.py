"""Outages under load: what a node depends on goes away while devices keep
sending, and comes back: PostgreSQL (crashed and restarted), Mosquitto
(restarted), the log's disk (full, then given room: a tmpfs the test mounts),
the node's wall clock (stepped an hour forward, then back, by libfaketime), the
node's chain (out of its reach for OUTAGE seconds, while a watcher sees it). Each
time the node says so (503 with Retry-After where it cannot take a reading),
recovers by itself, and keeps every promise: no acknowledged reading lost, none
logged twice or out of its device's order, every signed checkpoint a prefix of
the tree, and the chain's anchor in agreement."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from tests.chain.conftest import anvil_accounts
from tests.cli.command import trustmesh
from tests.reliability.load import Fleet, NodeProcess, Promises, check_log
from tests.services import (
    CutLink,
    FakeClock,
    anvil_node,
    free_port,
    mosquitto,
    postgres,
    volume,
    wait_until,
)
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.suite import Deployment, Disputes, LogAnchor, Registry
from trustmesh.device import Device, MqttRoute
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher


class Watched:
    """A node under a fleet's load, with a poller keeping every checkpoint it serves."""

    def __init__(
        self, node: NodeProcess, fleet: Fleet, http: httpx.Client, rpc: str | None = None
    ) -> None:
        self.node, self.fleet, self.http, self.rpc = node, fleet, http, rpc
        self.promises = Promises(node, http)
        self.stop = threading.Event()
        self.poller = threading.Thread(target=self.promises.poll, args=(self.stop,))

    def grows(self, by: int) -> Callable[[], bool]:
        return self.node.grows(self.http, by)

    def finish(self) -> None:
        """Drain the fleet, check the promises online, stop the node, check offline."""
        self.fleet.finish()
        self.promises.check(self.fleet)
        self.stop.set()
        self.poller.join(timeout=30)
        self.node.stop()
        check_log(self.node, self.promises, self.fleet, self.rpc)


@pytest.fixture
def under_load(tmp_path: Path) -> Iterator[Callable[..., Watched]]:
    """Start a node with ``options`` (and ``env``) and a fleet on ``routes`` (a
    function of the node's URL), loading it; everything is stopped after the test.
    On a chain of the test's own: its ``rpc`` URL (as the test sees it), and the
    ``fleet_env`` that registers the devices there."""
    with httpx.Client(timeout=10) as http:
        started: list[Watched] = []

        def start(
            options: list[str],
            routes: Callable[[str], list[str | MqttRoute]],
            env: dict[str, str] | None = None,
            rpc: str | None = None,
            fleet_env: dict[str, str] | None = None,
        ) -> Watched:
            node = NodeProcess(tmp_path / "node", free_port(), ["--epoch", "0.5", *options], env)
            node.start()
            fleet = Fleet(tmp_path, node, routes(node.url), fleet_env)
            watched = Watched(node, fleet, http, rpc)
            started.append(watched)
            watched.poller.start()
            watched.fleet.start()
            return watched

        try:
            yield start
        finally:
            for watched in started:
                watched.stop.set()
                watched.fleet.close()
                watched.poller.join(timeout=30)
                watched.node.stop()


def _probe(node: NodeProcess, tmp_path: Path) -> Callable[[], httpx.Response]:
    """A registered device's fresh reading, posted alone: the node's answer."""
    device = Device(SoftwareSigner.generate(), tmp_path / "probe.seq")
    registered = trustmesh("device", "register", "--did", device.did, "--node", node.url)
    assert registered.returncode == 0, registered.stderr.decode()

    def post() -> httpx.Response:
        return httpx.post(
            f"{node.url}/v1/readings",
            content=device.sign("probe", 1, unit="C"),
            headers={"content-type": "application/cose"},
            timeout=10,
        )

    return post


def _refused(probe: Callable[[], httpx.Response]) -> httpx.Response:
    """Post probes until one is refused as store-unavailable; that answer. Every
    answer before it took the reading."""
    answers: list[httpx.Response] = []

    def refused() -> bool:
        answers.append(probe())
        return answers[-1].status_code == 503

    wait_until(refused, "a 503")
    assert all(a.status_code == 200 for a in answers[:-1]), [a.text for a in answers]
    refusal = answers[-1]
    assert refusal.headers["retry-after"].isdigit()
    assert refusal.json()["type"].endswith("/store-unavailable")
    return refusal


def test_postgresql_restarted_under_load(
    tmp_path: Path, under_load: Callable[..., Watched]
) -> None:
    with postgres() as database:
        run = under_load(["--db", database.url], lambda url: [url, url, url])
        probe = _probe(run.node, tmp_path)
        wait_until(run.grows(100), "load")
        database.stop()  # as a crash: recovery replays its WAL at the next start
        _refused(probe)
        assert httpx.get(f"{run.node.url}/v1/checkpoint").status_code == 200  # reads go on
        database.start()
        wait_until(run.grows(100), "ingest to recover")
        run.finish()


def test_mosquitto_restarted_under_load(tmp_path: Path, under_load: Callable[..., Watched]) -> None:
    with mosquitto() as broker:
        run = under_load(
            ["--mqtt", broker.url],
            lambda url: [MqttRoute(broker.url, url), MqttRoute(broker.url, url), url],
        )
        over_mqtt = run.fleet.uplinks[:2]

        def mqtt_grows(by: int) -> Callable[[], bool]:
            target = sum(u.sent_to.get(str(u.nodes[0]), 0) for u in over_mqtt) + by
            return lambda: sum(u.sent_to.get(str(u.nodes[0]), 0) for u in over_mqtt) >= target

        wait_until(mqtt_grows(100), "load over MQTT")
        broker.stop()
        wait_until(run.grows(100), "HTTP ingest to go on without the broker")
        broker.start()  # same port, no persistence: the node and devices reconnect
        wait_until(mqtt_grows(100), "ingest over MQTT to recover", seconds=120)
        run.finish()


def test_a_full_disk_under_the_log(tmp_path: Path, under_load: Callable[..., Watched]) -> None:
    """The log's volume fills up under load: the node refuses with 503 and serves
    what it holds; given room, it goes on, and the log is whole (SQLite's own
    integrity check, and every promise)."""
    with volume(tmp_path / "volume", "3m") as disk:
        log = disk.path / "log.db"
        run = under_load(["--db", str(log)], lambda url: [url, url])
        probe = _probe(run.node, tmp_path)
        _refused(probe)  # (the fleet fills the 3 MB)
        assert httpx.get(f"{run.node.url}/v1/checkpoint").status_code == 200  # reads go on
        size = run.node.size(run.http)
        assert run.http.get(f"{run.node.url}/v1/entries/{size - 1}").status_code == 200
        disk.resize("256m")
        wait_until(run.grows(200), "ingest to go on once there is room")
        run.finish()
        with sqlite3.connect(log) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _anchored(http: httpx.Client, node: NodeProcess) -> int:
    metrics = text_string_to_metric_families(http.get(f"{node.url}/metrics").text)
    (family,) = (f for f in metrics if f.name == "trustmesh_anchored_size")
    return int(family.samples[0].value)


def test_the_wall_clock_steps_an_hour_forward_and_back(
    tmp_path: Path, under_load: Callable[..., Watched]
) -> None:
    """The node's clock (only its: the devices' is right) jumps an hour ahead: the
    readings look an hour old, still taken. Then an hour behind the real time:
    they look an hour ahead, refused for now ("clock", never for good), kept by
    the devices. Back to the right time: everything is taken, the embedded chain
    (in the node's process, on the same clock) goes on anchoring, nothing lost."""
    clock = FakeClock(tmp_path)
    run = under_load([], lambda url: [url, url], clock.env)
    probe = _probe(run.node, tmp_path)
    wait_until(run.grows(100), "load")
    clock.set("+1h")
    grown = run.grows(100)
    wait_until(lambda: grown() and probe().status_code == 200, "ingest an hour ahead")
    clock.set("-1h")

    def refused_for_now() -> bool:
        answer = probe().json()  # (a receipt while the node still reads the old offset)
        return str(answer.get("type", "")).endswith("/clock")

    wait_until(refused_for_now, "readings an hour ahead of the node refused for now")
    clock.set("+0")
    wait_until(run.grows(200), "ingest once the clock is right")
    run.fleet.finish()
    size = run.node.size(run.http)
    wait_until(lambda: _anchored(run.http, run.node) >= size, "anchoring to catch up")
    run.finish()


OUTAGE = float(os.environ.get("TRUSTMESH_CHAIN_OUTAGE_SECONDS", "15"))  # the full run: 60
MERGE_DELAY = int(OUTAGE) + 120  # the chain's maximum merge delay: past any outage here
GRACE = 1.0  # seconds past an epoch the watcher waits before it notarizes


class _WatcherOnItsThread:
    """A watcher of the node, on the chain directly (not through the node's link),
    ticking on a thread of its own until :meth:`close`; what it reported."""

    def __init__(self, node_url: str, reader: ChainClient, deployment: Deployment) -> None:
        self.reports: list[dict[str, Any]] = []
        self.ticks = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        view = ChainView(reader, deployment)
        self._thread = threading.Thread(target=self._run, args=(node_url, view))
        self._thread.start()

    def _run(self, node_url: str, view: ChainView) -> None:
        with httpx.Client(timeout=10) as http:
            watcher = Watcher([node_url], http, chain=view, grace=GRACE, report=self.reports.append)
            try:
                while not self._stop.wait(0.2):
                    watcher.tick()
                    self.ticks += 1
            except BaseException as failure:  # (kept for the test to raise)
                self.failure = failure
            finally:
                watcher.close()

    def ticked(self, times: int) -> Callable[[], bool]:
        target = self.ticks + times
        return lambda: self.failure is not None or self.ticks >= target

    def close(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.failure is not None:
            raise self.failure
        return self.reports


@pytest.mark.anvil
def test_the_chain_out_of_reach_under_load(
    tmp_path: Path, under_load: Callable[..., Watched]
) -> None:
    """The node's chain (anvil, through a link the test cuts) is out of its reach
    for OUTAGE seconds under load, while a watcher sees the chain: ingest goes on,
    the watcher notarizes what stays unanchored past its grace, the node's anchors
    catch up once the link is back, within the merge delay; with the chain's time
    then moved past every deadline, no proof of lateness holds, nobody is slashed,
    and every promise to the fleet is kept."""
    deployer, device_owner, watcher_key = (a.key.hex() for a in anvil_accounts()[:3])
    with anvil_node() as url:
        deployed = trustmesh(
            "chain", "deploy", "--rpc", url, "--data-dir", tmp_path / "node",
            "--max-merge-delay", str(MERGE_DELAY), env={"TRUSTMESH_CHAIN_KEY": deployer},
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr.decode()
        link = CutLink(urlparse(url).port or 0)
        reader = ChainClient(rpc_web3(url), Account.from_key(watcher_key))
        try:
            run = under_load(
                ["--rpc", link.url], lambda node: [node, node, node],
                env={"TRUSTMESH_CHAIN_KEY": deployer}, rpc=url,
                fleet_env={"TRUSTMESH_CHAIN_KEY": device_owner},
            )  # fmt: skip
            origin = run.promises.origin
            deployment = Deployment.load(tmp_path / "node", reader.chain_id)
            assert deployment is not None
            anchor, disputes = LogAnchor(reader, deployment), Disputes(reader, deployment)
            stake = int(Registry(reader, deployment).node(origin)["stake"])
            watcher = _WatcherOnItsThread(run.node.url, reader, deployment)
            try:
                wait_until(lambda: anchor.latest(origin)[0] >= 100, "the first anchors")
                link.cut()
                cut_at = time.monotonic()
                while time.monotonic() - cut_at < OUTAGE:
                    wait_until(run.grows(50), "ingest to go on without the chain")
                behind = run.node.size(run.http) - anchor.latest(origin)[0]
                notarized = _notarized(disputes)
                link.restore()
                assert behind > 0 and notarized, "the outage left nothing to notarize"
                size = run.node.size(run.http)
                wait_until(lambda: anchor.latest(origin)[0] >= size, "the anchors to catch up")
                run.fleet.finish()
                notarized = _notarized(disputes)
                deadline = max(disputes.notarized(origin, s) for s in notarized) + MERGE_DELAY
                reader.w3.provider.make_request("evm_increaseTime", [MERGE_DELAY + 1])  # type: ignore[arg-type]
                reader.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                assert int(reader.w3.eth.get_block("latest")["timestamp"]) > deadline
                wait_until(watcher.ticked(3), "the watcher to look past the deadlines")
            finally:
                reports = watcher.close()
            for late in notarized:
                with pytest.raises(Reverted, match="disputes: anchored"):
                    disputes.prove_late(origin, late)
            assert disputes.proven(0, reader.w3.eth.block_number) == []
            assert int(Registry(reader, deployment).node(origin)["stake"]) == stake
            kinds = {(r["event"], r.get("kind", r.get("proof"))) for r in reports}
            assert ("proof", "notarize") in kinds and ("proof", "late") not in kinds, reports
            run.finish()
        finally:
            link.close()


def _notarized(disputes: Disputes) -> list[int]:
    """The sizes of every checkpoint notarized on the chain so far."""
    events = disputes.contract.events.Notarized().get_logs(from_block=0)
    return [int(event["args"]["size"]) for event in events]
