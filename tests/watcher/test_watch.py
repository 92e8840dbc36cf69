"""`trustmesh watch` against real nodes: an honest log raises nothing; a device
that signs two payloads under one seq on two nodes is caught."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cli.command import trustmesh
from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.device import Device
from trustmesh.identity import SoftwareSigner
from trustmesh.reading import sign_reading


def _post(node: RunningNode, entries: list[bytes]) -> None:
    answer = httpx.post(
        f"{node.url}/v1/readings",
        content=b"".join(entries),
        headers={"content-type": "application/cbor-seq"},
    )
    assert answer.status_code == 200
    assert all("index" in item for item in answer.json())


def _checkpointed(nodes: list[RunningNode], size: int) -> None:
    """Wait (bounded) until every node has signed a checkpoint of ``size`` entries."""
    wait_until(
        lambda: all(
            httpx.get(f"{n.url}/v1/checkpoint").text.split("\n")[1] == str(size) for n in nodes
        ),
        "a checkpoint of the expected size",
        seconds=30,
    )


def _lines(stdout: bytes) -> list[dict[str, Any]]:
    """The alerts, then the summary line (proof lines left out)."""
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    return [d for d in lines if d.get("event") != "proof"]


def test_an_honest_node_raises_nothing(tmp_path: Path, start_node: Any) -> None:
    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=0.5)
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    _post(node, [device.sign("t", i) for i in range(20)])
    _checkpointed([node], 20)
    mirrors = tmp_path / "watcher"
    result = trustmesh("watch", "--node", node.url, "--once", "--data-dir", mirrors)
    assert result.returncode == 0, result.stderr
    *findings, summary = _lines(result.stdout)
    assert findings == []
    assert summary["findings"] == 0
    assert summary["audited"] == 20
    assert list(mirrors.iterdir()) == []  # the run's mirror of the log is removed at the end


def test_equivocation_across_two_nodes_is_caught(tmp_path: Path, start_node: Any) -> None:
    first, second = start_node(epoch=0.5), start_node(epoch=0.5)
    device = SoftwareSigner.generate()
    did = Device(device, tmp_path / "unused.seq").did
    for node in (first, second):
        assert trustmesh("device", "register", "--did", did, "--node", node.url).returncode == 0
    now = int(time.time() * 1000)
    _post(first, [sign_reading(device, seq=1, ts=now, sensor="t", value=20)])
    _post(second, [sign_reading(device, seq=1, ts=now, sensor="t", value=99)])  # the lie
    _checkpointed([first, second], 1)
    result = trustmesh(
        "watch", "--node", first.url, "--node", second.url, "--once",
        "--data-dir", tmp_path / "watcher",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    *findings, summary = _lines(result.stdout)
    # Each node here runs its own embedded chain; the watcher reads the first one's,
    # where the second log is not registered: reported, and the equivocation caught.
    assert [f["kind"] for f in findings] == ["bad-checkpoint", "equivocation"]
    assert findings[0]["origin"] == second.info["origin"]
    assert "does not hold (unknown)" in findings[0]["detail"]
    assert len(findings[1]["evidence"]) == 2
    assert summary == {"audited": 2, "findings": 2}


def test_watch_serves_receipts_and_holds_a_real_node_to_them(
    tmp_path: Path, start_node: Any
) -> None:
    """`trustmesh watch --port`: devices forward real receipts; the node anchors them in
    time, so each is settled as honoured and nothing is alerted; Ctrl-C stops it cleanly."""
    import os
    import signal
    import subprocess
    import sys

    from tests.services import free_port
    from trustmesh.chain.embedded import dev_keys

    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=0.5)
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    answer = httpx.post(
        f"{node.url}/v1/readings",
        content=b"".join(device.sign("t", i) for i in range(3)),
        headers={"content-type": "application/cbor-seq"},
    )
    receipts = [{"leaf_hash": i["leaf_hash"], "proof": i["proof"]} for i in answer.json()]
    port = free_port()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "trustmesh", "watch", "--node", node.url,
         "--port", str(port), "--interval", "0.2", "--data-dir", str(tmp_path / "watcher")],
        env={**os.environ, "TRUSTMESH_CHAIN_KEY": dev_keys()[3]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def audited() -> bool:
            assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
            try:
                return bool(httpx.get(f"{url}/v1/status").json()["logs"][node.info["origin"]] >= 3)
            except httpx.HTTPError:
                return False  # not listening yet

        wait_until(audited, "the watcher to come up and audit the log")
        held = httpx.post(f"{url}/v1/receipts", json={"receipts": receipts})
        assert held.status_code == 202, held.text
        assert [r["index"] for r in held.json()["held"]] == [0, 1, 2]
        wait_until(
            lambda: not httpx.get(f"{url}/v1/status").json()["receipts_held"],
            "the receipts to be settled",
        )
        status = httpx.get(f"{url}/v1/status").json()
        assert (status["alerts"], status["proofs"]) == (0, [])
    finally:
        watcher.send_signal(signal.SIGINT)
        stdout, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, stderr
    assert json.loads(stdout.decode().splitlines()[-1]) == {"audited": 3, "findings": 0}


def test_a_long_log_is_followed_chunk_by_chunk(tmp_path: Path, start_node: Any) -> None:
    """More entries than one chunk: each chunk is checked against the signed tree
    (a consistency proof) before it is kept, and the mirror ends up equal to the log."""
    from trustmesh.log.checkpoint import parse_checkpoint_text
    from trustmesh.log.note import parse_note
    from trustmesh.watcher.follow import CHUNK_BUNDLES
    from trustmesh.watcher.service import Watcher

    total = CHUNK_BUNDLES * 256 + 300  # a full chunk and part of the next
    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=0.5)
    signers = [SoftwareSigner.generate() for _ in range(2)]
    for signer in signers:
        did = Device(signer, tmp_path / "unused.seq").did
        assert trustmesh("device", "register", "--did", did, "--node", node.url).returncode == 0
    now = int(time.time() * 1000)
    readings = [
        sign_reading(signers[i % 2], seq=i // 2 + 1, ts=now, sensor="t", value=i)
        for i in range(total)
    ]
    for first in range(0, total, 2000):
        _post(node, readings[first : first + 2000])
    _checkpointed([node], total)
    reports: list[dict[str, Any]] = []
    with httpx.Client(timeout=30) as http:
        watcher = Watcher([node.url], http, report=reports.append, mirror=tmp_path)
        try:
            watcher.tick()  # the whole backlog in one poll, a chunk at a time
            (follower,) = watcher.followers.values()
            assert follower.audited == total
            note = parse_note(httpx.get(f"{node.url}/v1/checkpoint").text)
            checkpoint = parse_checkpoint_text(note.text)
            assert follower.view.root(total) == checkpoint.root
        finally:
            watcher.close()
    assert reports == []
