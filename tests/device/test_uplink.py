"""The device SDK against real nodes: a node killed mid-stream, the device fails
over, and every (did, seq) it signed ends up receipted, in exactly one entry of
each log that took it; none lost. And the outbox survives a restart."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.command import trustmesh
from tests.node.conftest import RunningNode
from trustmesh.device import Device, MqttRoute, Outbox, Uplink, wall_clock_ms
from trustmesh.identity import SoftwareSigner
from trustmesh.log.merkle import leaf_hash
from trustmesh.log.note import NoteVerifier
from trustmesh.log.receipt import open_receipt
from trustmesh.log.store import open_store
from trustmesh.log.tlog_proof import parse_tlog_proof
from trustmesh.reading import parse_reading, sign_reading

READINGS = 300


def test_failover_when_a_node_dies_mid_stream(tmp_path: Path, start_node: Any) -> None:
    first: RunningNode = start_node(epoch=0.5)
    second: RunningNode = start_node(epoch=0.5)
    device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
    for node in (first, second):
        assert (
            trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
        )
    outbox = Outbox(tmp_path / "outbox.db")
    with httpx.Client(timeout=5) as http:
        uplink = Uplink(device, outbox, [first.url, second.url], http=http, max_wait=0.5)
        stop = threading.Event()
        for i in range(READINGS // 2):
            uplink.record("temperature", 20 + i % 10, unit="C")
        uplink.flush()  # one batch to the first node
        assert uplink.sent_to == {first.url: 100}
        first.process.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
        first.process.wait(timeout=30)
        for i in range(READINGS // 2):
            uplink.record("humidity", 40 + i % 10, unit="%")
        uplink.drain(stop)
    assert len(outbox) == 0
    assert uplink.sent_to == {first.url: 100, second.url: READINGS - 100}

    # Every seq has a receipt (a tlog-proof) from the node that logged it, which
    # verifies for the very entry that node holds at the receipt's index.
    receipts = outbox.receipts()
    assert sorted(receipts) == list(range(1, READINGS + 1))
    second.process.send_signal(signal.SIGINT)
    second.process.wait(timeout=30)
    held: dict[int, int] = {}
    for node in (first, second):
        verifier = NoteVerifier.from_vkey(node.info["verifier_key"])
        store = open_store(node.data_dir / "log.db")
        try:
            for seq, (origin, proof) in receipts.items():
                if origin == node.info["origin"]:
                    entry = store.entry(parse_tlog_proof(proof).index)
                    assert parse_reading(entry).seq == seq
                    assert open_receipt(proof, leaf_hash(entry), verifier, origin).size > 0
            # Each log holds each seq at most once, and together they hold them all.
            found = [store.find(device.did, seq) for seq in range(1, READINGS + 1)]
            entries = store.device_entries(device.did, 10 * READINGS)
        finally:
            store.close()
        assert len(entries) == len({seq for seq, _ in entries}), "a seq logged twice in one log"
        for seq, index in enumerate(found, start=1):
            if index is not None:
                held[seq] = held.get(seq, 0) + 1
    assert sorted(held) == list(range(1, READINGS + 1)), "a reading was lost"


def test_the_outbox_keeps_what_was_not_receipted(tmp_path: Path) -> None:
    device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
    outbox = Outbox(tmp_path / "outbox.db")
    with httpx.Client(timeout=1) as http:
        uplink = Uplink(device, outbox, ["http://127.0.0.1:9"], http=http, max_wait=0.05)
        seqs = [uplink.record("t", i) for i in range(3)]
        assert uplink.flush() == 0  # no node reachable
        assert 0 < uplink.backoff() <= 0.05
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.db")
    assert [seq for seq, _ in reopened.pending()] == seqs == [1, 2, 3]
    assert reopened.receipts() == {}
    with pytest.raises(ValueError, match="at least one node"):
        Uplink(device, reopened, [])


def test_mqtt_route_with_failover_to_http(tmp_path: Path, start_node: Any, mqtt_url: str) -> None:
    """Readings go through the broker the node ingests from; a dead broker route
    fails over to the node's HTTP API. Every reading receipted, none twice."""
    node: RunningNode = start_node(epoch=0.5, mqtt=mqtt_url)
    device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    outbox = Outbox(tmp_path / "outbox.db")
    with httpx.Client(timeout=5) as http:
        via_broker = Uplink(device, outbox, [MqttRoute(mqtt_url, node.url)], http=http)
        try:
            for i in range(20):
                via_broker.record("power", 1.0 + i / 10, unit="kW")
            via_broker.drain()
        finally:
            via_broker.close()
        assert via_broker.sent_to == {f"{mqtt_url} (for {node.url})": 20}
        dead = MqttRoute("mqtt://127.0.0.1:9", node.url)
        failing_over = Uplink(device, outbox, [dead, node.url], http=http, max_wait=0.2)
        for i in range(5):
            failing_over.record("power", 2.0 + i / 10, unit="kW")
        failing_over.drain()
        assert failing_over.sent_to == {node.url: 5}
    assert len(outbox) == 0 and sorted(outbox.receipts()) == list(range(1, 26))


def test_readings_refused_for_good_leave_the_queue(tmp_path: Path, start_node: Any) -> None:
    """A replayed seq and an equivocation can never be logged: they move to the
    refused table with the node's answer, and the readings behind them go on.
    A reading of a device the node does not know yet stays queued (it may be
    registered later)."""
    node: RunningNode = start_node(epoch=0.5)
    signer = SoftwareSigner.generate()
    device = Device(signer, tmp_path / "device.seq")
    outbox = Outbox(tmp_path / "outbox.db")
    with httpx.Client(timeout=5) as http:
        uplink = Uplink(device, outbox, [node.url], http=http, max_wait=0.2)
        uplink.record("t", 1.0)
        assert uplink.flush() == 0 and len(outbox) == 1  # unknown device: kept
        assert outbox.refused() == []
        assert (
            trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
        )
        for i in range(3):
            uplink.record("t", 2.0 + i)
        uplink.drain()  # seqs 1..4, once the node has seen the registration
        assert sorted(outbox.receipts()) == [1, 2, 3, 4]
        replay = sign_reading(signer, seq=2, ts=wall_clock_ms(), sensor="t", value=9.0)
        outbox.put(2, replay)  # seq 2 again, other bytes: equivocation
        old = sign_reading(signer, seq=0, ts=wall_clock_ms(), sensor="t", value=0.5)
        outbox.put(0, old)  # below every logged seq and never logged: a replay
        uplink.record("t", 6.0)  # seq 5, behind them in the queue
        assert uplink.flush() == 1  # one round: seq 5 receipted, 0 and 2 refused for good
        assert uplink.flush() == 0 and uplink.backoff() == 0  # nothing left to send
    refused = {r.seq: r for r in outbox.refused()}
    assert sorted(refused) == [0, 2]
    assert refused[0].type == "replay" and refused[0].entry == old
    assert refused[2].type == "equivocation" and refused[2].node == node.url
    assert "seq" in refused[2].detail
    assert len(outbox) == 0 and sorted(outbox.receipts()) == [1, 2, 3, 4, 5]
    assert uplink.refused == 2


def test_a_refusal_over_mqtt_names_its_reading(
    tmp_path: Path, start_node: Any, mqtt_url: str
) -> None:
    """Over MQTT a refusal carries the leaf hash of what was sent, so the device
    can tell which reading it was: an equivocation leaves the queue at once."""
    node: RunningNode = start_node(epoch=0.5, mqtt=mqtt_url)
    signer = SoftwareSigner.generate()
    device = Device(signer, tmp_path / "device.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    outbox = Outbox(tmp_path / "outbox.db")
    with httpx.Client(timeout=5) as http:
        uplink = Uplink(device, outbox, [MqttRoute(mqtt_url, node.url)], http=http)
        try:
            uplink.record("t", 1.0)
            uplink.drain()
            twin = sign_reading(signer, seq=1, ts=wall_clock_ms(), sensor="t", value=2.0)
            outbox.put(1, twin)  # seq 1 again, other bytes
            uplink.record("t", 3.0)
            assert uplink.flush() == 1  # seq 2 receipted, the twin refused in the same round
        finally:
            uplink.close()
    (refusal,) = outbox.refused()
    assert (refusal.seq, refusal.type, refusal.entry) == (1, "equivocation", twin)
    assert len(outbox) == 0 and sorted(outbox.receipts()) == [1, 2]


def test_a_receipt_that_does_not_verify_keeps_the_reading(tmp_path: Path, start_node: Any) -> None:
    """A reading leaves the outbox only with a receipt that verifies against the
    node's log key: a node (here a real one behind a lying proxy) that answers with a
    proof of another leaf, a checkpoint signed by another key, a truncated proof, or
    another index, keeps the reading queued; the honest node then receipts it."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from trustmesh._server import ThreadedServer
    from trustmesh.log.checkpoint import Checkpoint, parse_checkpoint_text, sign_checkpoint
    from trustmesh.log.note import NoteSigner, parse_note
    from trustmesh.log.tlog_proof import format_tlog_proof

    node: RunningNode = start_node(epoch=0.5)
    device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    stranger = NoteSigner.generate(node.info["origin"])

    def forge(item: dict[str, Any], lie: str) -> dict[str, Any]:
        proof = parse_tlog_proof(item["proof"])
        if lie == "other leaf":
            hashes = (bytes(32), *proof.hashes[1:]) if proof.hashes else (bytes(32),)
            return {**item, "proof": format_tlog_proof(proof.index, hashes, proof.checkpoint)}
        if lie == "other key":
            signed = parse_checkpoint_text(parse_note(proof.checkpoint).text)
            note = sign_checkpoint(Checkpoint(signed.origin, signed.size, signed.root), stranger)
            return {**item, "proof": format_tlog_proof(proof.index, proof.hashes, note)}
        if lie == "truncated":
            return {**item, "proof": item["proof"][:80]}
        return {**item, "index": item["index"] + 1}

    lie = ""

    async def readings(request: Request) -> Response:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{node.url}/v1/readings", content=await request.body(), headers=request.headers
            )
        return JSONResponse([forge(item, lie) for item in answer.json()])

    async def info(request: Request) -> Response:
        async with httpx.AsyncClient() as client:
            return JSONResponse((await client.get(f"{node.url}/v1/log")).json())

    routes = [Route("/v1/readings", readings, methods=["POST"]), Route("/v1/log", info)]
    proxy = ThreadedServer(Starlette(routes=routes)).start()
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        with httpx.Client(timeout=5) as http:
            lying = Uplink(device, outbox, [proxy.url], http=http, max_wait=0.05)
            lying.record("t", 1.0)
            for lie in ("other leaf", "other key", "truncated", "index"):
                assert lying.flush() == 0, lie
                assert len(outbox) == 1 and outbox.receipts() == {}, lie
            honest = Uplink(device, outbox, [node.url], http=http)
            assert honest.flush() == 1 and len(outbox) == 0
    finally:
        proxy.stop()
