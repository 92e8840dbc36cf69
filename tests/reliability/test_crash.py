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
import threading
from pathlib import Path

import httpx
import pytest

from tests.reliability.load import Fleet, NodeProcess, Promises, check_log
from tests.services import free_port, fresh_database, wait_until
from trustmesh.device import MqttRoute

KILLS = int(os.environ.get("TRUSTMESH_CRASH_KILLS", "5"))


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_node_killed_at_random_keeps_every_promise(
    store: str, tmp_path: Path, request: pytest.FixtureRequest, mqtt_url: str
) -> None:
    rng = random.Random(f"crash/{store}")
    options = ["--epoch", "0.5", "--mqtt", mqtt_url]
    if store == "postgres":
        options += ["--db", fresh_database(request.getfixturevalue("postgres_url"))]
    node = NodeProcess(tmp_path / "node", free_port(), options)
    stop = threading.Event()
    node.start()
    try:
        routes: list[str | MqttRoute] = [
            node.url,
            node.url,
            node.url,
            MqttRoute(mqtt_url, node.url),
        ]
        fleet = Fleet(tmp_path, node, routes)
        with httpx.Client(timeout=10) as http:
            promises = Promises(node, http)
            poller = threading.Thread(target=promises.poll, args=(stop,))
            poller.start()
            try:
                fleet.start()
                for kill in range(KILLS):
                    # killed at a random point: after 50 to 149 more entries, looked at
                    # every 20 ms
                    grown = node.grows(http, 50 + rng.randrange(100))
                    wait_until(grown, f"load before kill {kill}", pause=0.02)
                    node.kill()
                    node.start()
                    promises.check(fleet)
                fleet.finish()
                promises.check(fleet)
            finally:
                stop.set()
                poller.join(timeout=30)
                fleet.close()
    finally:
        node.stop()
    check_log(node, promises, fleet)
    print(f"{store}: {KILLS} kills, {len(promises.receipts)} receipts checked, "
          f"{promises.checkpoints_checked} checkpoint consistency checks")  # fmt: skip
