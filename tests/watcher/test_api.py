"""The watcher's HTTP API: receipts in (bad ones refused, nothing kept from a
bad batch), checkpoints and leaves out for peers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trustmesh._server import ThreadedServer
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite
from trustmesh.log import merkle
from trustmesh.log.note_p256 import LogSigner
from trustmesh.sim.lognode import SimLog
from trustmesh.watcher.api import create_watcher_app
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

STAKE = 10**15


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[SimLog, Watcher, str]]:
    chain = EmbeddedChain.open(tmp_path / "chain")
    client = ChainClient(chain.w3, chain.dev_accounts[0])
    deployment = deploy_suite(client, min_stake=STAKE)
    origin = "api.example/log"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    log = SimLog(signer, LogAnchor(client, deployment), epoch=60, checkpoint_interval=60)
    Registry(client, deployment).register_log(signer, log.url, STAKE)
    log.start()
    for i in range(3):
        log.append(b"entry %d" % i)
    log.sign()
    http = httpx.Client(timeout=10)
    watcher = Watcher([log.url], http, chain=ChainView(client, deployment))
    watcher.tick()
    server = ThreadedServer(create_watcher_app(watcher)).start()
    yield log, watcher, server.url
    server.stop()
    watcher.close()
    assert not watcher.mirror.exists()  # the run's mirror is removed
    http.close()
    log.stop()
    chain.close()


def test_receipts_are_checked_before_any_is_held(setup: tuple[SimLog, Watcher, str]) -> None:
    log, watcher, url = setup
    leaf = merkle.leaf_hash(b"entry 2")
    good = {"leaf_hash": leaf.hex(), "proof": log.receipt(2)}
    stranger = LogSigner.from_seed(log.signer.name, os.urandom(32))
    forged_log = SimLog(stranger, log.anchor, epoch=60, checkpoint_interval=60)
    for i in range(3):
        forged_log.append(b"entry %d" % i)
    forged = {"leaf_hash": leaf.hex(), "proof": forged_log.receipt(2)}
    elsewhere = SimLog(
        LogSigner.from_seed("other.example/log", os.urandom(32)),
        log.anchor,
        epoch=60,
        checkpoint_interval=60,
    )
    elsewhere.append(b"entry 0")
    foreign = {"leaf_hash": merkle.leaf_hash(b"entry 0").hex(), "proof": elsewhere.receipt(0)}
    truncated = {**good, "proof": good["proof"][: good["proof"].index("\n\n") + 30]}
    cases: list[tuple[dict[str, object], int, str]] = [
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "not JSON"),
        ({"json": {"receipts": "nope"}}, 400, "expected"),
        ({"json": [good]}, 400, "expected"),
        ({"json": {"receipts": [good["proof"]]}}, 400, "expected"),  # a v1-style list of texts
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "json"),
        ({"json": {"receipts": [good, forged]}}, 422, "receipt 1: its checkpoint"),
        ({"json": {"receipts": [{**good, "proof": "not a proof"}]}}, 422, "starts with"),
        ({"json": {"receipts": [{**good, "leaf_hash": "zz"}]}}, 422, "receipt 0"),
        ({"json": {"receipts": [{**good, "leaf_hash": "00"}]}}, 422, "32 bytes"),
        ({"json": {"receipts": [{**good, "leaf_hash": bytes(32).hex()}]}}, 422, "not that entry"),
        ({"json": {"receipts": [truncated]}}, 422, "receipt 0"),
        ({"json": {"receipts": [foreign]}}, 422, "does not follow"),
        (  # a lone surrogate, escaped in the JSON text
            {
                "content": '{"receipts": [{"leaf_hash": "00", "proof": "c2sp.org/tlog-proof@v1'
                '\\nindex 0\\n\\n\\ud800"}]}',
                "headers": {"content-type": "application/json"},
            },
            422,
            "receipt 0",
        ),
    ]
    for request, status, reason in cases:
        answer = httpx.post(f"{url}/v1/receipts", **request)  # type: ignore[arg-type]
        assert answer.status_code == status, (request, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert reason in answer.json()["detail"], answer.json()
    assert watcher._receipts == []  # nothing held from a refused batch
    answer = httpx.post(f"{url}/v1/receipts", json={"receipts": [good]})
    assert answer.status_code == 202, answer.text
    assert answer.json()["held"] == [{"origin": log.signer.name, "index": 2, "size": 3}]
    assert [p.receipt.index for p in watcher._receipts if p.receipt] == [2]


def test_checkpoints_and_leaves_for_peers(setup: tuple[SimLog, Watcher, str]) -> None:
    log, _, url = setup
    checkpoints = httpx.get(f"{url}/v1/checkpoints").json()
    assert checkpoints == {log.signer.name: log.main.note}
    leaves = httpx.get(f"{url}/v1/leaves", params={"origin": log.signer.name, "size": 2}).json()
    assert leaves["leaves"] == [merkle.leaf_hash(b"entry %d" % i).hex() for i in range(2)]
    for origin, size in ((log.signer.name, 4), ("x", 1)):
        params: dict[str, str | int] = {"origin": origin, "size": size}
        assert httpx.get(f"{url}/v1/leaves", params=params).status_code == 404
    assert httpx.get(f"{url}/v1/leaves", params={"size": "-1"}).status_code == 400
    assert httpx.get(f"{url}/v1/leaves", params={"size": "²"}).status_code == 400
    assert httpx.get(f"{url}/v1/nowhere").status_code == 404
    assert httpx.get(f"{url}/v1/status").json()["logs"] == {log.signer.name: 3}


def test_a_node_naming_another_key_than_the_registry_is_reported(tmp_path: Path) -> None:
    chain = EmbeddedChain.open(tmp_path / "chain")
    client = ChainClient(chain.w3, chain.dev_accounts[0])
    deployment = deploy_suite(client, min_stake=STAKE)
    origin = "impostor.example/log"
    registered = LogSigner.from_seed(origin, os.urandom(32))
    impostor = LogSigner.from_seed(origin, os.urandom(32))  # what the node serves with
    log = SimLog(impostor, LogAnchor(client, deployment), epoch=60, checkpoint_interval=60)
    Registry(client, deployment).register_log(registered, log.url, STAKE)
    log.start()
    reports: list[dict[str, object]] = []
    try:
        with httpx.Client(timeout=10) as http:
            watcher = Watcher(
                [log.url], http, chain=ChainView(client, deployment), report=reports.append
            )
            watcher.tick()
            watcher.close()
    finally:
        log.stop()
        chain.close()
    kinds = [r["kind"] for r in reports]
    assert kinds == ["bad-checkpoint", "bad-checkpoint"], reports
    assert "does not hold" in str(reports[0]["detail"])  # then its notes fail the Registry's key
    assert "no signature from a known key" in str(reports[1]["detail"])
