"""An honest node whose chain lags is never notarized into a slash: a real node on
anvil, cut off from the chain for longer than an epoch and the watcher's grace (so
the watcher notarizes what it signed meanwhile), anchors once the chain is back,
within the maximum merge delay; no proof of lateness holds, and its stake stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.chain.conftest import anvil_accounts
from tests.cli.test_cli import trustmesh
from tests.node.conftest import RunningNode
from tests.services import CutLink, wait_until
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.suite import Deployment, Disputes, LogAnchor, Registry
from trustmesh.device import Device
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

MERGE_DELAY = 12  # seconds: the chain's maximum merge delay for this suite
EPOCH = 1.0
GRACE = 1.0


def _deploy(data_dir: Path, anvil_url: str) -> Deployment:
    """The suite, with a short merge delay, recorded in the node's data dir."""
    env = {**os.environ, "TRUSTMESH_CHAIN_KEY": anvil_accounts()[0].key.hex()}
    deployed = subprocess.run(
        [sys.executable, "-m", "trustmesh", "chain", "deploy", "--rpc", anvil_url,
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


@pytest.mark.anvil
def test_an_honest_node_with_a_lagging_chain_is_not_slashed(
    tmp_path: Path, start_node: Any, anvil_url: str
) -> None:
    _, watcher_key, device_owner = anvil_accounts()
    deployment = _deploy(tmp_path / "node1", anvil_url)  # where the node will find it
    link = CutLink(urlparse(anvil_url).port or 0)  # the node reaches the chain through it
    try:
        node: RunningNode = start_node(chain=f"anvil-at:{link.url}", epoch=EPOCH)
        origin = node.info["origin"]
        device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
        registered = trustmesh(
            "device", "register", "--did", device.did, "--node", node.url,
            env={"TRUSTMESH_CHAIN_KEY": device_owner.key.hex()},
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        reader = ChainClient(rpc_web3(anvil_url), watcher_key)
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
        assert {k for k in kinds if k[0] == "alert"} <= {("alert", "unanchored")}, reports
    finally:
        link.close()
