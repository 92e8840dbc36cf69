"""An honest node whose chain lags is never notarized into a slash: a real node,
cut off from its chain for longer than an epoch and the watcher's grace (so the
watcher notarizes what it signed meanwhile), anchors once the chain is back,
within the maximum merge delay; no proof of lateness holds, and its stake stays.
On the embedded chain (served over JSON-RPC, as `trustmesh chain serve` does for
several processes) and on anvil."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.chain.conftest import anvil_accounts
from tests.cli.command import trustmesh
from tests.node.conftest import RunningNode
from tests.services import CutLink, wait_until
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.embedded import dev_keys
from trustmesh.chain.suite import Deployment, Disputes, LogAnchor, Registry
from trustmesh.device import Device
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

MERGE_DELAY = 12  # seconds: the chain's maximum merge delay for this suite
EPOCH = 1.0
GRACE = 1.0


@contextlib.contextmanager
def _served_embedded_chain(data_dir: Path) -> Iterator[str]:
    """`trustmesh chain serve` on a free loopback port: the embedded chain's URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trustmesh", "chain", "serve", "--data-dir", str(data_dir),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        yield str(json.loads(process.stdout.readline())["rpc"])
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A chain's JSON-RPC URL, and three funded keys: deployer, device owner, watcher."""
    if request.param == "anvil":
        yield request.getfixturevalue("anvil_url"), [a.key.hex() for a in anvil_accounts()]
        return
    with _served_embedded_chain(tmp_path / "chain") as url:
        yield url, dev_keys()[:3]


def _deploy(data_dir: Path, url: str, key: str) -> Deployment:
    """The suite, with a short merge delay, recorded in the node's data dir."""
    env = {**os.environ, "TRUSTMESH_CHAIN_KEY": key}
    deployed = subprocess.run(
        [sys.executable, "-m", "trustmesh", "chain", "deploy", "--rpc", url,
         "--data-dir", str(data_dir), "--max-merge-delay", str(MERGE_DELAY)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    recorded = json.loads(deployed.stdout)
    return Deployment(int(recorded["chain_id"]), dict(recorded["contracts"]))


def _send(node: RunningNode, device: Device, count: int) -> None:
    body = b"".join(device.sign("t", i) for i in range(count))
    answer = httpx.post(
        f"{node.url}/v1/readings", content=body, headers={"content-type": "application/cbor-seq"}
    )
    assert answer.status_code == 200 and all("proof" in item for item in answer.json())


def test_an_honest_node_with_a_lagging_chain_is_not_slashed(
    tmp_path: Path, start_node: Any, chain: tuple[str, list[str]]
) -> None:
    from eth_account import Account

    url, (deployer, device_owner, watcher_key) = chain
    deployment = _deploy(tmp_path / "node1", url, deployer)  # where the node will find it
    link = CutLink(urlparse(url).port or 0)  # the node reaches the chain through it
    try:
        node: RunningNode = start_node(
            chain=f"anvil-at:{link.url}", epoch=EPOCH, chain_key=deployer
        )
        origin = node.info["origin"]
        device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
        registered = trustmesh(
            "device", "register", "--did", device.did, "--node", node.url,
            env={"TRUSTMESH_CHAIN_KEY": device_owner},
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        reader = ChainClient(rpc_web3(url), Account.from_key(watcher_key))
        anchor, disputes = LogAnchor(reader, deployment), Disputes(reader, deployment)
        stake = int(Registry(reader, deployment).node(origin)["stake"])

        reports: list[dict[str, Any]] = []
        with httpx.Client(timeout=10) as http:
            watcher = Watcher(
                [node.url], http, chain=ChainView(reader, deployment), grace=GRACE,
                report=reports.append,
            )  # fmt: skip
            try:
                _send(node, device, 5)
                wait_until(lambda: anchor.latest(origin)[0] >= 5, "the first anchor")
                link.cut()  # the node's chain is out of reach: its anchors stall
                _send(node, device, 5)
                cut_at = time.monotonic()

                def notarized() -> bool:
                    watcher.tick()
                    return any(r.get("proof") == "notarize" for r in reports)

                wait_until(notarized, "the watcher to notarize the unanchored checkpoint")
                assert time.monotonic() - cut_at >= EPOCH + GRACE  # not before its grace
                (notary,) = [r for r in reports if r.get("proof") == "notarize"]
                assert notary["accepted"] and notary["slashed"] == 0
                size = max(s for s in range(6, 11) if disputes.notarized(origin, s))
                link.restore()  # back within the merge delay: the node anchors it
                wait_until(lambda: anchor.latest(origin)[0] >= size, "the node's late anchor")
                deadline = disputes.notarized(origin, size) + MERGE_DELAY

                def past_deadline() -> bool:
                    watcher.tick()
                    reader.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                    return int(reader.w3.eth.get_block("latest")["timestamp"]) > deadline

                wait_until(past_deadline, "the merge delay to pass", seconds=MERGE_DELAY + 30)
                for _ in range(3):
                    watcher.tick()
            finally:
                watcher.close()
        with pytest.raises(Reverted, match="disputes: anchored in time"):
            disputes.prove_late(origin, size)
        assert int(Registry(reader, deployment).node(origin)["stake"]) == stake
        kinds = [(r["event"], r.get("kind", r.get("proof"))) for r in reports]
        assert ("proof", "late") not in kinds, reports
        # Alerted (its anchors did stall, unanchored past the grace), never proven against.
        alerts = {kind for event, kind in kinds if event == "alert"}
        assert "unanchored" in alerts and alerts <= {"unanchored", "stall"}, reports
    finally:
        link.close()
