"""Proof bundles from a real node, checked offline and against its chain; each
kind of tampering fails at its own step."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import httpx

from tests.cli.test_cli import trustmesh
from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.bundle import ChainFacts, verify_bundle
from trustmesh.device import Device
from trustmesh.identity import SoftwareSigner, key_from_did
from trustmesh.log.note import NoteSigner, NoteVerifier


def _anchored_bundle(tmp_path: Path, start_node: Any) -> tuple[RunningNode, Device, dict[str, Any]]:
    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=0.5)
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    entries = [device.sign("temperature", 20 + i, unit="C") for i in range(4)]
    answer = httpx.post(
        f"{node.url}/v1/readings",
        content=b"".join(entries),
        headers={"content-type": "application/cbor-seq"},
    )
    assert answer.status_code == 200
    wait_until(lambda: httpx.get(f"{node.url}/v1/log").json()["anchored"]["size"] >= 4, "anchor")
    result = trustmesh("proof", "bundle", "--node", node.url, "--did", device.did, "--seq", "2")
    assert result.returncode == 0, result.stderr
    return node, device, json.loads(result.stdout)


def test_a_bundle_verifies_offline_and_on_chain(tmp_path: Path, start_node: Any) -> None:
    node, device, bundle = _anchored_bundle(tmp_path, start_node)
    assert (bundle["did"], bundle["seq"]) == (device.did, 2)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    offline = trustmesh("proof", "verify", str(path))
    assert offline.returncode == 0, offline.stdout
    report = json.loads(offline.stdout)
    assert [s["step"] for s in report["steps"]] == ["reading", "checkpoint", "inclusion", "anchor"]
    on_chain = trustmesh("proof", "verify", str(path), "--rpc", f"{node.url}/rpc")
    assert on_chain.returncode == 0, on_chain.stdout
    assert json.loads(on_chain.stdout)["steps"][-1]["step"] == "chain"

    missing = trustmesh("proof", "bundle", "--node", node.url, "--did", device.did, "--seq", "99")
    assert missing.returncode == 2 and b"not in a signed checkpoint" in missing.stderr
    pinned = NoteSigner.generate(node.info["origin"]).verifier.vkey
    wrong_key = trustmesh("proof", "verify", str(path), "--verifier-key", pinned)
    assert wrong_key.returncode == 1
    assert json.loads(wrong_key.stdout)["failed"] == "checkpoint"


def test_each_tampering_fails_at_its_step(tmp_path: Path, start_node: Any) -> None:
    _, device, bundle = _anchored_bundle(tmp_path, start_node)
    assert verify_bundle(bundle).valid

    def tampered(change: Any) -> str | None:
        other = copy.deepcopy(bundle)
        change(other)
        return verify_bundle(other).failed

    def flip_entry(b: dict[str, Any]) -> None:
        entry = bytearray(base64.b64decode(b["entry"]))
        entry[-1] ^= 1
        b["entry"] = base64.b64encode(bytes(entry)).decode()

    def flip_hash(h: str) -> str:
        return f"{int(h[0], 16) ^ 1:x}{h[1:]}"

    assert tampered(flip_entry) == "reading"
    assert tampered(lambda b: b.update(seq=3)) == "reading"
    assert tampered(lambda b: b.update(checkpoint=b["checkpoint"].replace("\n", "\n1", 1))) == (
        "checkpoint"
    )
    assert tampered(lambda b: b.update(index=b["index"] + 1)) == "inclusion"
    assert tampered(lambda b: b["inclusion"].__setitem__(0, flip_hash(b["inclusion"][0]))) == (
        "inclusion"
    )
    assert tampered(lambda b: b.update(anchor=None)) == "anchor"
    assert tampered(lambda b: b["anchor"].update(root=flip_hash(b["anchor"]["root"]))) == "anchor"
    assert tampered(lambda b: b["anchor"].update(size=bundle["index"])) == "anchor"
    assert tampered(lambda b: b.update(format="x")) == "format"
    assert tampered(lambda b: b.update(entry="not base64!")) == "format"

    # The chain step compares the anchor and both keys with what the chain holds.
    root = bytes.fromhex(bundle["anchor"]["root"])
    log_key = NoteVerifier.from_vkey(bundle["verifier_key"]).public_key
    key = key_from_did(device.did)
    facts = {
        "root": ChainFacts(bytes(32), key, log_key),
        "device": ChainFacts(root, None, log_key),
        "log key": ChainFacts(root, key, bytes(32)),
    }
    assert verify_bundle(bundle, chain=lambda *_: ChainFacts(root, key, log_key)).valid
    for name, wrong in facts.items():
        report = verify_bundle(bundle, chain=lambda *_, w=wrong: w)
        assert report.failed == "chain", name
