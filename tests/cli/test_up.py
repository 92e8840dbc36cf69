"""`trustmesh up` end to end: a small fleet on two nodes; anchors appear, every kind
of misbehaviour is stopped or caught; Ctrl-C; a rerun continues where it stopped."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.services import wait_until
from trustmesh.bundle import verify_bundle, verify_receipt
from trustmesh.identity import Alg, SoftwareSigner, did_from_key


def _start(data_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "trustmesh", "up", "--data-dir", str(data_dir), "--devices", "8",
         "--malicious", "4", "--epoch", "1", "--reputation-epoch", "4", "--port", "18080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    assert process.stdout is not None
    dashboard = process.stdout.readline()
    watcher = process.stdout.readline()
    assert dashboard.startswith("Dashboard: http://127.0.0.1:"), dashboard
    assert watcher.startswith("Watcher: "), watcher
    return process, dashboard.split()[1], watcher.split()[1]


def _stop(process: subprocess.Popen[str]) -> dict[str, Any]:
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    summary: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return summary


def _wait(condition: Any, what: str, seconds: float = 90) -> None:
    wait_until(condition, what, seconds, pause=0.5)


ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _browse(dashboard: str, user_data: Path) -> None:
    """Headless Chromium on the dashboard: it loads, lists devices, shows the slash,
    verifies a reading, explains a device's score; a screenshot is kept in
    artifacts/dashboard.png."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(user_data),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(dashboard)
            page.wait_for_selector("tr.device", timeout=30_000)
            assert page.locator("tr.device").count() >= 1
            page.wait_for_function(
                "document.querySelectorAll('#nodes td.ok').length >= 2", timeout=30_000
            )  # both nodes listed, and up
            page.wait_for_function(
                "Number(document.querySelector('#slash-count')?.textContent) >= 1",
                timeout=30_000,
            )
            page.wait_for_selector("#readings button", timeout=30_000)
            page.locator("#readings button").last.click()
            page.wait_for_selector("#verdict-result", timeout=30_000)
            assert page.locator("#verdict-result").inner_text() == "valid"
            page.wait_for_selector("#devices button.score", timeout=60_000)
            page.locator("#devices button.score").first.click()
            page.wait_for_selector("#explained-score", timeout=30_000)
            assert 0 <= float(page.locator("#explained-score").inner_text()) <= 1
            assert "readings_logged" in page.locator("#explanation").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()


def _did(data_dir: Path, number: int) -> str:
    key = (data_dir / "fleet" / f"device{number}.key").read_bytes()
    return str(did_from_key(SoftwareSigner.from_private_bytes(Alg.ES256, key).public_key))


def _ranked(dashboard: str, data_dir: Path) -> bool:
    """Whether the first node's last reputation table ranks the honest devices of its
    cell (4 and 6) above the misbehaving ones (0 and 2), which misreport when they
    challenge their neighbours."""
    scores: dict[int, int] = {}
    for number in (0, 2, 4, 6):
        answer = httpx.get(f"{dashboard}v1/reputation/{_did(data_dir, number)}")
        if answer.status_code != 200:
            return False  # no table holds it yet
        scores[number] = answer.json()["score"]
    return min(scores[4], scores[6]) > max(scores[0], scores[2])


def _slash_counted(dashboard: str, data_dir: Path) -> bool:
    """Whether a recent table of the first node counts the slash of device 0 (it
    equivocates; the watcher proves it) in the device's evidence."""
    epochs = httpx.get(f"{dashboard}v1/reputation").json()["epochs"]
    for epoch in epochs[-30:]:
        answer = httpx.get(
            f"{dashboard}v1/reputation/{_did(data_dir, 0)}", params={"epoch": epoch["epoch"]}
        )
        if answer.status_code == 200 and answer.json()["explanation"]["counts"].get("slashed"):
            return True
    return False


def test_up_runs_detects_stops_and_resumes(tmp_path: Path) -> None:
    process, dashboard, watcher = _start(tmp_path)
    try:
        assert httpx.get(dashboard).status_code == 200
        _wait(lambda: httpx.get(f"{dashboard}v1/log").json()["anchored"]["size"] > 0, "anchors")
        _wait(lambda: httpx.get(watcher).json()["alerts"] > 0, "a detection")
        _wait(lambda: any(p["accepted"] for p in httpx.get(watcher).json()["proofs"]), "a slash")
        _wait(lambda: _ranked(dashboard, tmp_path), "the misreporting devices ranked last")
        _wait(lambda: _slash_counted(dashboard, tmp_path), "the slash in the equivocator's record")
        _browse(dashboard, tmp_path / "chromium")
        bundle = httpx.get(f"{dashboard}ui/bundle", params={"index": 0})
        assert "attachment" in bundle.headers["content-disposition"]
        assert verify_bundle(bundle.json()).valid
        receipt = httpx.get(f"{dashboard}ui/receipt", params={"index": 0})  # as devices hold them
        assert receipt.headers["content-disposition"].endswith('.tlog-proof"')
        entry = base64.b64decode(bundle.json()["entry"])
        vkey = bundle.json()["verifier_key"]
        assert verify_receipt(receipt.text, entry, vkey).valid
    finally:
        first = _stop(process)
    stats = first["fleet"]
    assert stats["registered"] == 8
    for refused in ("refused: tampered", "refused: replay", "refused: sybil"):
        assert stats[refused] > 0, refused
    assert not [key for key in stats if key.endswith("!")], stats  # nothing slipped through
    assert "equivocation" in first["alerts"] and first["slashes"] >= 1
    assert all(log["anchored"] > 0 for log in first["logs"].values())

    process, dashboard, _ = _start(tmp_path)
    try:
        origin = httpx.get(f"{dashboard}v1/log").json()["origin"]
        before = first["logs"][origin]
        _wait(lambda: httpx.get(f"{dashboard}v1/log").json()["size"] > before["size"], "growth")
    finally:
        second = _stop(process)
    assert set(second["logs"]) == set(first["logs"])  # the same logs, resumed
    for origin, log in second["logs"].items():
        assert log["size"] > first["logs"][origin]["size"]
        assert log["anchored"] >= first["logs"][origin]["anchored"]
    assert "registered" not in second["fleet"]  # the registry remembered the fleet


def test_up_without_the_fleet(tmp_path: Path) -> None:
    """--no-sim: the chain, one node and the watcher, and no simulated devices;
    the node takes readings from outside and the summary says the fleet was off."""
    from trustmesh.device import Device
    from trustmesh.identity import SoftwareSigner

    process = subprocess.Popen(
        [sys.executable, "-m", "trustmesh", "up", "--data-dir", str(tmp_path / "up"),
         "--no-sim", "--nodes", "1", "--epoch", "1", "--port", "18180"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    dashboard = process.stdout.readline()
    assert dashboard.startswith("Dashboard: http://127.0.0.1:"), dashboard
    node = dashboard.split()[1].rstrip("/")
    process.stdout.readline()  # the watcher's address
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert httpx.post(f"{node}/v1/devices", json={"did": device.did}).status_code < 300
    reading = device.sign("t", 1.5)
    answer = httpx.post(
        f"{node}/v1/readings", content=reading, headers={"content-type": "application/cose"}
    )
    assert answer.status_code == 200 and answer.json()["index"] == 0
    _wait(lambda: httpx.get(f"{node}/v1/log").json()["anchored"]["size"] == 1, "the anchor")
    summary = _stop(process)
    assert summary["fleet"] == {} and summary["alerts"] == [] and summary["slashes"] == 0
    assert [log["size"] for log in summary["logs"].values()] == [1]


def test_up_with_the_mesh(tmp_path: Path) -> None:
    """--mesh: each node publishes its peer on the Registry and the second joins the
    first from there (no --peer given); a partitioned device's readings reach its
    node through the fleet's relay alone, and are receipted."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trustmesh", "up", "--data-dir", str(tmp_path / "up"), "--mesh",
         "--nodes", "2", "--devices", "4", "--malicious", "0", "--epoch", "1", "--port", "18380"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        dashboard = process.stdout.readline()
        assert dashboard.startswith("Dashboard: http://127.0.0.1:"), dashboard
        first = dashboard.split()[1].rstrip("/")
        process.stdout.readline()  # the watcher's address

        def relayed() -> int:
            panel = httpx.get(f"{first}/ui/mesh").text
            return int(panel.split("id='relayed-readings'>")[1].split("<")[0])

        _wait(lambda: relayed() > 0, "a batch relayed to the first node over the mesh")
        addresses = httpx.get(f"{first}/v1/log").json()["mesh"]
        assert addresses and all("/p2p/" in address for address in addresses)

        def hearing_checkpoints() -> int:  # the second node (from the Registry) and the watcher
            panel = httpx.get(f"{first}/ui/mesh").text
            return int(panel.split("/trustmesh/v1/checkpoints</code></td><td>")[1].split("<")[0])

        _wait(lambda: hearing_checkpoints() >= 2, "the second node and the watcher on the mesh")
    finally:
        summary = _stop(process)
    assert summary["fleet"]["receipted over the mesh"] > 0, summary["fleet"]
    assert not [key for key in summary["fleet"] if key.startswith("error")], summary["fleet"]
