"""Proof bundles from a real node, checked offline and against its chain; each
kind of tampering fails at its own step. A bundle made from a receipt a device
holds; a receipt checked alone, and refused with a reason when it is wrong."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import httpx

from tests.cli.command import trustmesh
from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.bundle import ChainFacts, verify_bundle
from trustmesh.device import Device
from trustmesh.identity import SoftwareSigner, key_from_did
from trustmesh.log.note import NoteSigner, NoteVerifier
from trustmesh.log.tlog_proof import format_tlog_proof, parse_tlog_proof


def _logged(
    tmp_path: Path, start_node: Any
) -> tuple[RunningNode, Device, list[bytes], list[dict[str, Any]]]:
    """A node and four readings it logged and anchored, with their receipts."""
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
    return node, device, entries, answer.json()


def _anchored_bundle(tmp_path: Path, start_node: Any) -> tuple[RunningNode, Device, dict[str, Any]]:
    node, device, _, _ = _logged(tmp_path, start_node)
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

    proof = parse_tlog_proof(bundle["proof"])

    def receipt(index: int, hashes: Any, checkpoint: str) -> Any:
        return lambda b: b.update(index=index, proof=format_tlog_proof(index, hashes, checkpoint))

    assert tampered(flip_entry) == "reading"
    assert tampered(lambda b: b.update(seq=3)) == "reading"
    grown = proof.checkpoint.replace("\n", "\n1", 1)
    assert tampered(receipt(proof.index, proof.hashes, grown)) == "checkpoint"
    assert tampered(receipt(proof.index + 1, proof.hashes, proof.checkpoint)) == "inclusion"
    flipped = (bytes.fromhex(flip_hash(proof.hashes[0].hex())), *proof.hashes[1:])
    assert tampered(receipt(proof.index, flipped, proof.checkpoint)) == "inclusion"
    assert tampered(lambda b: b.update(index=b["index"] + 1)) == "format"
    assert tampered(lambda b: b.update(proof=b["proof"][:40])) == "format"
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


def test_a_bundle_from_a_receipt_and_a_receipt_alone(tmp_path: Path, start_node: Any) -> None:
    """A device's receipt becomes a bundle (the node adds the anchor); a receipt is
    checked alone with the log's key; a wrong one is refused with its reason."""
    node, _, entries, answers = _logged(tmp_path, start_node)
    entry_path, receipt_path = tmp_path / "r.cose", tmp_path / "r.tlog-proof"
    entry_path.write_bytes(entries[1])
    receipt_path.write_text(answers[1]["proof"])
    (tmp_path / "receipt.json").write_text(json.dumps(answers[1]))
    for source in (receipt_path, tmp_path / "receipt.json"):
        made = trustmesh("proof", "bundle", "--node", node.url, "--receipt", str(source))
        assert made.returncode == 0, made.stderr
        bundle = json.loads(made.stdout)
        assert bundle["proof"] == answers[1]["proof"]  # the device's receipt, as it is
        assert verify_bundle(bundle).valid, verify_bundle(bundle).to_json()
    vkey = node.info["verifier_key"]
    alone = trustmesh(
        "proof", "verify", str(receipt_path), "--entry", str(entry_path), "--verifier-key", vkey
    )
    assert alone.returncode == 0, alone.stdout
    assert [s["step"] for s in json.loads(alone.stdout)["steps"]] == [
        "reading",
        "checkpoint",
        "inclusion",
    ]
    (tmp_path / "other.cose").write_bytes(entries[2])
    wrong = {
        "inclusion": (answers[1]["proof"], "other.cose", vkey),
        "format": (answers[1]["proof"][:60], "r.cose", vkey),
        "checkpoint": (
            answers[1]["proof"],
            "r.cose",
            NoteSigner.generate(node.info["origin"]).verifier.vkey,
        ),
    }
    for step, (text, entry_name, key) in wrong.items():
        receipt_path.write_text(text)
        result = trustmesh(
            "proof", "verify", str(receipt_path), "--entry", str(tmp_path / entry_name),
            "--verifier-key", key,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout
        report = json.loads(result.stdout)
        assert report["failed"] == step and report["steps"][-1]["detail"], report
    missing = trustmesh("proof", "verify", str(receipt_path), "--entry", str(entry_path))
    assert missing.returncode == 2 and b"--verifier-key" in missing.stderr
    receipt_path.write_text("c2sp.org/tlog-proof@v1\nindex x\n\nnot a checkpoint\n")
    garbled = trustmesh("proof", "bundle", "--node", node.url, "--receipt", str(receipt_path))
    assert garbled.returncode == 2 and b"not a receipt" in garbled.stderr
