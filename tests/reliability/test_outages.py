"""Outages under load: what a node depends on goes away while devices keep
sending, and comes back: PostgreSQL (crashed and restarted), Mosquitto
(restarted), the log's disk (full, then given room: a tmpfs the test mounts),
the node's wall clock (stepped an hour forward, then back, by libfaketime). Each
time the node says so (503 with Retry-After where it cannot take a reading),
recovers by itself, and keeps every promise: no acknowledged reading lost, none
logged twice or out of its device's order, every signed checkpoint a prefix of
the tree, and the chain's anchor in agreement.

(The chain's own outage, ingest going on while it is down and nobody notarized
into a slash, is tests/node/test_node_e2e.py::test_ingestion_goes_on_while_the_
chain_is_down and tests/watcher/test_lagging_chain.py.)"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_cli import trustmesh
from tests.reliability.load import Fleet, NodeProcess, Promises, check_log
from tests.services import FakeClock, free_port, mosquitto, postgres, volume, wait_until
from trustmesh.device import Device, MqttRoute
from trustmesh.identity import SoftwareSigner


class Watched:
    """A node under a fleet's load, with a poller keeping every checkpoint it serves."""

    def __init__(self, node: NodeProcess, fleet: Fleet, http: httpx.Client) -> None:
        self.node, self.fleet, self.http = node, fleet, http
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
        check_log(self.node, self.promises, self.fleet)


@pytest.fixture
def under_load(tmp_path: Path) -> Iterator[Callable[..., Watched]]:
    """Start a node with ``options`` (and ``env``) and a fleet on ``routes`` (a
    function of the node's URL), loading it; everything is stopped after the test."""
    with httpx.Client(timeout=10) as http:
        started: list[Watched] = []

        def start(
            options: list[str],
            routes: Callable[[str], list[str | MqttRoute]],
            env: dict[str, str] | None = None,
        ) -> Watched:
            node = NodeProcess(tmp_path / "node", free_port(), ["--epoch", "0.5", *options], env)
            node.start()
            watched = Watched(node, Fleet(tmp_path, node, routes(node.url)), http)
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
