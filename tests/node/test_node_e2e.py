"""A node end to end, as operators and devices use it: start `trustmesh node run`,
register devices, send readings over HTTP and MQTT (one at a time and as
batches), get receipts (tlog-proofs, checked by our verifier and by an
independent one), wait for the on-chain anchor, and verify inclusion and
consistency proofs against the anchored root and the signed checkpoint. On the
embedded chain and on anvil, with SQLite and with PostgreSQL."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cbor2
import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from proofbundle.tlogproof import verify_tlog_proof

from tests.chain.conftest import anvil_accounts
from tests.cli.command import trustmesh
from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.suite import Deployment, LogAnchor
from trustmesh.device import Device
from trustmesh.identity import SoftwareSigner
from trustmesh.log import merkle
from trustmesh.log.checkpoint import open_checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.log.receipt import open_receipt

MATRIX = [
    pytest.param("embedded", "sqlite", id="embedded-sqlite"),
    pytest.param("embedded", "postgres", id="embedded-postgres", marks=pytest.mark.postgres),
    pytest.param("anvil", "sqlite", id="anvil-sqlite", marks=pytest.mark.anvil),
    pytest.param(
        "anvil", "postgres", id="anvil-postgres", marks=[pytest.mark.anvil, pytest.mark.postgres]
    ),
]


def _mqtt_exchange(url: str, messages: Sequence[tuple[str, bytes]]) -> list[Any]:
    """Publish messages (QoS 1: a reading, or a batch as one CBOR sequence) and
    collect one answer per message (an object, or an array for a batch)."""
    host, port = url.removeprefix("mqtt://").split(":")
    answers: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"device-{uuid.uuid4().hex[:8]}")
    subscribed = queue.Queue[bool]()
    client.on_message = lambda c, u, m: answers.put(json.loads(m.payload))
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(True)
    client.connect(host, int(port))
    client.loop_start()
    try:
        client.subscribe("trustmesh/v1/receipts/#", qos=1)
        subscribed.get(timeout=10)
        for did, payload in messages:
            client.publish(f"trustmesh/v1/readings/{did}", payload, qos=1)
        return [answers.get(timeout=60) for _ in messages]
    finally:
        client.loop_stop()
        client.disconnect()


def _receipted_indices(node: RunningNode, receipts: list[tuple[bytes, Any]]) -> set[int]:
    """Every receipt is a tlog-proof of its entry in a checkpoint the log key signed,
    for our verifier and for an independent one (proofbundle's); their indices."""
    verifier = NoteVerifier.from_vkey(node.info["verifier_key"])
    indices = set()
    for entry, item in receipts:
        leaf = merkle.leaf_hash(entry)
        receipt = open_receipt(item["proof"], leaf, verifier, node.info["origin"])
        assert (receipt.index, receipt.size) == (item["index"], item["size"])
        assert item["leaf_hash"] == leaf.hex()
        theirs = verify_tlog_proof(item["proof"], entry, node.info["verifier_key"])
        assert theirs["ok"] and theirs["index"] == receipt.index, theirs
        indices.add(receipt.index)
    return indices


@pytest.mark.parametrize(("chain", "store"), MATRIX)
def test_node_end_to_end(
    chain: str,
    store: str,
    tmp_path: Path,
    start_node: Any,
    mqtt_url: str,
    request: pytest.FixtureRequest,
) -> None:
    node: RunningNode = start_node(chain=chain, store=store, mqtt=mqtt_url, epoch=1.0)
    verifier = NoteVerifier.from_vkey(node.info["verifier_key"])
    env = {"TRUSTMESH_CHAIN_KEY": anvil_accounts()[2].key.hex()} if chain == "anvil" else {}

    devices = []
    for i in range(3):
        device = Device(SoftwareSigner.generate(), tmp_path / f"device{i}.seq")
        registered = trustmesh(
            "device", "register", "--did", device.did, "--node", node.url, env=env
        )
        assert registered.returncode == 0, registered.stderr
        assert json.loads(registered.stdout)["status"] == "active"
        devices.append(device)

    # HTTP: one reading at a time, then a batch as a CBOR sequence.
    receipts = []
    for device in devices:
        entry = device.sign("temperature", 20.5, unit="C")
        answer = httpx.post(
            f"{node.url}/v1/readings", content=entry, headers={"content-type": "application/cose"}
        )
        assert answer.status_code == 200, answer.text
        receipts.append((entry, answer.json()))
    batch = [devices[i % 3].sign("humidity", 40 + i, unit="%") for i in range(9)]
    answer = httpx.post(
        f"{node.url}/v1/readings",
        content=b"".join(batch),
        headers={"content-type": "application/cbor-seq"},
    )
    assert answer.status_code == 200, answer.text
    assert all("index" in item for item in answer.json())
    receipts += list(zip(batch, answer.json(), strict=True))

    # MQTT: the same devices, the broker in between; one reading a message, then
    # each device's batch as one message (a CBOR sequence), answered by one array.
    mqtt_readings = [(d.did, d.sign("power", 3.25, unit="kW")) for d in devices for _ in range(2)]
    batches = [(d.did, [d.sign("power", 4.0 + i, unit="kW") for i in range(3)]) for d in devices]
    by_leaf = {merkle.leaf_hash(entry).hex(): entry for _, entry in mqtt_readings}
    by_leaf |= {merkle.leaf_hash(entry).hex(): entry for _, batch in batches for entry in batch}
    messages = [*mqtt_readings, *((did, b"".join(batch)) for did, batch in batches)]
    answers = _mqtt_exchange(mqtt_url, messages)
    assert [isinstance(answer, list) for answer in answers] == [False] * 6 + [True] * 3
    for item in [*answers[:6], *(item for batch in answers[6:] for item in batch)]:
        assert "index" in item, item
        receipts.append((by_leaf[item["leaf_hash"]], item))

    assert _receipted_indices(node, receipts) == set(range(len(receipts)))

    # Wait (bounded) for an anchor covering everything.
    total = len(receipts)
    wait_until(
        lambda: httpx.get(f"{node.url}/v1/log").json()["anchored"]["size"] >= total,
        "an anchor of every entry",
        pause=0.2,
    )

    # The anchored root, read from the chain itself.
    rpc = node.info["rpc"] or f"{node.url}/rpc"
    client = ChainClient(rpc_web3(rpc), anvil_accounts()[0] if chain == "anvil" else _any_account())
    deployment = Deployment(node.info["chain_id"], node.info["contracts"])
    anchored_size, anchored_root, _, _ = LogAnchor(client, deployment).latest(node.info["origin"])
    assert anchored_size >= total

    checkpoint = open_checkpoint(
        httpx.get(f"{node.url}/v1/checkpoint").text, verifier, node.info["origin"]
    )
    assert checkpoint.size >= total
    low, high = sorted([(anchored_size, anchored_root), (checkpoint.size, checkpoint.root)])
    consistency = httpx.get(
        f"{node.url}/v1/proof/consistency", params={"from": low[0], "to": high[0]}
    ).json()
    merkle.verify_consistency(
        low[0], high[0], low[1], high[1], [bytes.fromhex(h) for h in consistency["hashes"]]
    )

    for entry, item in receipts:
        assert httpx.get(f"{node.url}/v1/entries/{item['index']}").content == entry
        for size, root in ((anchored_size, anchored_root), (checkpoint.size, checkpoint.root)):
            proof = httpx.get(
                f"{node.url}/v1/proof/inclusion", params={"index": item["index"], "size": size}
            ).json()
            merkle.verify_inclusion(
                merkle.leaf_hash(entry),
                item["index"],
                size,
                [bytes.fromhex(h) for h in proof["hashes"]],
                root,
            )


def _any_account() -> Any:
    from eth_account import Account

    return Account.create()


def test_refusals_and_duplicates(tmp_path: Path, start_node: Any) -> None:
    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=5.0)
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    stranger = Device(SoftwareSigner.generate(), tmp_path / "s.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0

    def post(body: bytes, media: str = "application/cose") -> httpx.Response:
        return httpx.post(f"{node.url}/v1/readings", content=body, headers={"content-type": media})

    first = device.sign("t", 1)
    assert post(first).status_code == 200
    again = post(first)  # a failover retry: a receipt for the original
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert post(b"\xd2" + first).json()["index"] == again.json()["index"]
    verifier = NoteVerifier.from_vkey(node.info["verifier_key"])
    leaf = merkle.leaf_hash(first)
    assert open_receipt(again.json()["proof"], leaf, verifier).index == again.json()["index"]

    def problem(response: httpx.Response, status: int, slug: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/" + slug)

    problem(post(stranger.sign("t", 1)), 401, "unknown-device")
    problem(post(b"\x1cgarbage"), 400, "bad-cbor")
    problem(post(b"\x00"), 400, "wrong-structure")
    problem(post(first, "text/plain"), 415, "unsupported-media-type")
    problem(post(bytes(9000)), 413, "oversized")
    tampered = bytearray(device.sign("t", 2))
    tampered[-3] ^= 1
    problem(post(bytes(tampered)), 422, "signature")
    equivocating = device.signer  # same key, same seq as `first`, other payload
    from trustmesh.reading import sign_reading

    problem(
        post(sign_reading(equivocating, seq=1, ts=int(time.time() * 1000), sensor="t", value=2)),
        409,
        "equivocation",
    )
    evidence = httpx.get(f"{node.url}/v1/evidence").json()["evidence"]
    assert evidence and evidence[0]["did"] == device.did
    problem(post(sign_reading(equivocating, seq=1, ts=1, sensor="t", value=1)), 422, "clock")
    third = device.sign("t", 3)
    assert post(third).status_code == 200
    older = sign_reading(equivocating, seq=2, ts=int(time.time() * 1000), sensor="t", value=5)
    problem(post(older), 409, "replay")
    seq_items = post(cbor2.dumps([1]) + first + first, "application/cbor-seq").json()
    assert seq_items[0]["status"] == 400 and seq_items[1]["duplicate"] is True
    assert seq_items[1] == seq_items[2]  # twice in a batch: one receipt for both
    assert open_receipt(seq_items[1]["proof"], leaf, verifier).size == seq_items[1]["size"]
    problem(
        httpx.get(f"{node.url}/v1/proof/inclusion", params={"index": 0, "size": 999}),
        404,
        "not-found",
    )
    problem(httpx.get(f"{node.url}/v1/nowhere"), 404, "not-found")
    problem(httpx.delete(f"{node.url}/v1/readings"), 405, "method-not-allowed")
    metrics = httpx.get(f"{node.url}/metrics").text
    assert 'trustmesh_readings_rejected_total{reason="signature"} 1.0' in metrics
    assert httpx.get(f"{node.url}/openapi.json").json()["openapi"].startswith("3.")


def test_log_served_as_c2sp_tiles(tmp_path: Path, start_node: Any) -> None:
    """Tiles and entry bundles, fetched as a tlog-tiles client would, give the
    checkpoint's root."""
    from trustmesh.log.bundles import decode_bundle

    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=0.5)
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    batch = [device.sign("t", i) for i in range(300)]
    answer = httpx.post(
        f"{node.url}/v1/readings",
        content=b"".join(batch),
        headers={"content-type": "application/cbor-seq"},
    )
    assert answer.status_code == 200
    verifier = NoteVerifier.from_vkey(node.info["verifier_key"])

    def signed() -> int:
        return open_checkpoint(httpx.get(f"{node.url}/checkpoint").text, verifier).size

    wait_until(lambda: signed() >= 300, "a checkpoint of the 300 readings", seconds=30)
    checkpoint = open_checkpoint(httpx.get(f"{node.url}/checkpoint").text, verifier)
    assert checkpoint.size == 300
    full = httpx.get(f"{node.url}/tile/0/000")
    assert full.headers["cache-control"].endswith("immutable")
    partial = httpx.get(f"{node.url}/tile/0/001.p/44").content
    leaves = [full.content[i : i + 32] for i in range(0, 8192, 32)] + [
        partial[i : i + 32] for i in range(0, len(partial), 32)
    ]
    assert merkle.root(leaves) == checkpoint.root
    entries = decode_bundle(httpx.get(f"{node.url}/tile/entries/000").content)
    entries += decode_bundle(httpx.get(f"{node.url}/tile/entries/001.p/44").content)
    assert entries == batch
    assert httpx.get(f"{node.url}/tile/0/001").status_code == 404  # not full yet
    assert httpx.get(f"{node.url}/tile/0/x001/000").status_code == 404
    assert httpx.get(f"{node.url}/tile/1/000.p/1").content == merkle.root(leaves[:256])


@pytest.mark.anvil
def test_ingestion_goes_on_while_the_chain_is_down(tmp_path: Path, start_node: Any) -> None:
    """Stop the chain: readings are still taken and receipted, anchoring fails and
    backs off; start it again: the next epochs anchor everything."""
    from tests.services import anvil_node, free_port

    port, state = free_port(), tmp_path / "anvil-state.json"
    chain = anvil_node(port, state)
    url = chain.__enter__()
    try:
        node: RunningNode = start_node(chain="anvil-at:" + url, store="sqlite", epoch=0.5)
        device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
        env = {"TRUSTMESH_CHAIN_KEY": anvil_accounts()[2].key.hex()}
        assert (
            trustmesh(
                "device", "register", "--did", device.did, "--node", node.url, env=env
            ).returncode
            == 0
        )

        def send(count: int) -> None:
            batch = [device.sign("t", i) for i in range(count)]
            answer = httpx.post(
                f"{node.url}/v1/readings",
                content=b"".join(batch),
                headers={"content-type": "application/cbor-seq"},
            )
            assert answer.status_code == 200
            assert all("index" in item for item in answer.json())

        def anchored() -> int:
            return int(httpx.get(f"{node.url}/v1/log").json()["anchored"]["size"])

        def wait_for(condition: Callable[[], bool]) -> None:
            wait_until(condition, "the anchor")

        send(5)
        wait_for(lambda: anchored() == 5)
    finally:
        chain.__exit__(None, None, None)  # the chain goes away (its state saved)
    send(7)  # still taken, still receipted
    wait_for(
        lambda: "trustmesh_anchor_failures_total 0.0" not in httpx.get(f"{node.url}/metrics").text
    )
    assert anchored() == 5
    with anvil_node(port, state):
        wait_for(lambda: anchored() == 12)


def test_disconnecting_clients_do_not_hurt_the_node(tmp_path: Path, start_node: Any) -> None:
    import socket
    from urllib.parse import urlparse

    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=5.0)
    address = urlparse(node.url)
    for body in (b"", b"\x84\x58", b"\x84" * 50):
        with socket.create_connection((address.hostname, address.port)) as sock:
            sock.sendall(
                b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/cose\r\n"
                b"Content-Length: 4000\r\n\r\n" + body
            )  # and hang up before the body is complete
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
    answer = httpx.post(
        f"{node.url}/v1/readings",
        content=device.sign("t", 1),
        headers={"content-type": "application/cose"},
    )
    assert answer.status_code == 200
    assert answer.json()["index"] == 0  # nothing half-sent was logged


def test_a_slow_body_times_out_with_a_problem(tmp_path: Path, start_node: Any) -> None:
    """A client that sends part of a body and then stalls gets a 400 problem once
    --body-timeout has passed; the node keeps serving and logs nothing of it."""
    import json as json_module
    import socket
    from urllib.parse import urlparse

    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=5.0, body_timeout=1.0)
    address = urlparse(node.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/cose\r\n"
            b"Content-Length: 400\r\n\r\n" + b"\x84" * 10
        )  # and nothing more: the node answers when the timeout passes
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"application/problem+json" in head.lower()
    problem = json_module.loads(body)
    assert problem["type"].endswith("/bad-request")
    assert "did not arrive within 1 s" in problem["detail"]
    info = httpx.get(f"{node.url}/v1/log").json()
    assert info["size"] == 0  # nothing of it was logged, and the node still answers


def test_revocation_reaches_the_node(tmp_path: Path, start_node: Any) -> None:
    """Revoke a device on-chain: within a refresh the node answers 401 for it."""
    from eth_account import Account

    from trustmesh.chain.suite import Registry

    node: RunningNode = start_node(chain="embedded", store="sqlite", epoch=5.0)
    device = Device(SoftwareSigner.generate(), tmp_path / "d.seq")
    assert trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0

    def post() -> httpx.Response:
        entry = device.sign("t", 1)
        return httpx.post(
            f"{node.url}/v1/readings", content=entry, headers={"content-type": "application/cose"}
        )

    assert post().status_code == 200  # and the node now has the device cached
    owner = Account.from_key(bytes(31) + b"\x01")  # the node funded it: its dev account owns it
    client = ChainClient(rpc_web3(f"{node.url}/rpc"), owner)
    Registry(client, Deployment(node.info["chain_id"], node.info["contracts"])).revoke(device.did)
    refused: list[httpx.Response] = []

    def revoked() -> bool:
        refused.append(post())
        return refused[-1].status_code != 200

    wait_until(revoked, "the revocation to reach the node", seconds=30, pause=0.2)
    answer = refused[-1]
    assert answer.status_code == 401
    assert answer.json()["type"].endswith("/revoked-device")
