"""A node keeps each reputation epoch's table from its own log: devices send
readings, challenges and witness readings; the node closes the epoch, serves every
score with its explanation and a proof against the table's root, rebuilds the same
tables after a restart, and `trustmesh reputation recompute` rebuilds them from the
public log and the chain alone, root for root."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi.abi import encode
from eth_account import Account

from tests.chain.conftest import anvil_accounts
from tests.cli.command import no_traceback, trustmesh
from tests.node.conftest import node_process
from tests.services import wait_until
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.reputation import ReputationContract
from trustmesh.chain.suite import origin_id
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.reading import sign_reading
from trustmesh.reputation import Params, check_proof
from trustmesh.reputation.merkle import leaf_hash
from trustmesh.reputation.publish import rebuild
from trustmesh.reputation.witness import challenge_fields, subject_id, witness_fields

EPOCH_S = 2.0


def _post(url: str, entries: list[bytes]) -> None:
    answer = httpx.post(
        f"{url}/v1/readings",
        content=b"".join(entries),
        headers={"content-type": "application/cbor-seq"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert all("proof" in item for item in answer.json()), answer.text


def _witnessed_epoch(url: str, devices: list[SoftwareSigner]) -> int:
    """One epoch, long over: each device logs readings and challenges its neighbours,
    who answer; the first one's challenge measurement is off, the second skips a seq."""
    dids = [str(did_from_key(d.public_key)) for d in devices]
    t0 = (time.time_ns() // 1_000_000 - 60_000) // 2000 * 2000
    seq = dict.fromkeys(dids, 0)

    def sign(i: int, ts: int, sensor: str, value: float, extra: dict[str, Any]) -> bytes:
        seq[dids[i]] += 2 if (i == 1 and seq[dids[i]] == 3) else 1  # device 1: a gap
        return sign_reading(
            devices[i], seq=seq[dids[i]], ts=ts, sensor=sensor, value=value, extra=extra
        )

    entries = [
        sign(i, t0 + 10 * k, "temp", 20.0, {}) for i in range(len(devices)) for k in range(5)
    ]
    for i in range(len(devices)):
        challenge = sign(
            i, t0 + 100, "challenge", 30.0 if i == 0 else 20.0, challenge_fields((10 * i, 0))
        )
        entries.append(challenge)
        for j in range(len(devices)):
            if j != i:
                extra = witness_fields(challenge, dids[i], (10 * j, 0))
                entries.append(sign(j, t0 + 200 + i, "witness", 20.0, extra))
    _post(url, entries)
    return t0 // 2000


def _anchors(url: str, node_id: str, epoch: int) -> int:
    """The anchors the node's own row counts in ``epoch`` (0 if not kept)."""
    answer = httpx.get(f"{url}/v1/reputation/{node_id}", params={"epoch": epoch})
    if answer.status_code != 200:
        return 0
    counts: dict[str, int] = answer.json()["explanation"]["counts"]
    return counts.get("anchor_kept", 0)


def _score(url: str, did: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v1/reputation/{did}", timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.parametrize(
    ("chain", "store"),
    [
        pytest.param("embedded", "sqlite", id="embedded-sqlite"),
        pytest.param(
            "anvil",
            "postgres",
            id="anvil-postgres",
            marks=[pytest.mark.anvil, pytest.mark.postgres],
        ),
    ],
)
def test_a_node_serves_scores_that_anyone_recomputes(
    tmp_path: Path, request: pytest.FixtureRequest, chain: str, store: str
) -> None:
    data_dir = tmp_path / "node"
    devices = [SoftwareSigner.generate() for _ in range(4)]
    dids = [str(did_from_key(d.public_key)) for d in devices]
    options: dict[str, Any] = {"chain": chain, "store": store, "reputation_epoch": EPOCH_S}
    env = {"TRUSTMESH_CHAIN_KEY": anvil_accounts()[2].key.hex()} if chain == "anvil" else {}
    with node_process(data_dir, request.getfixturevalue, **options) as node:
        for did in dids:
            registered = trustmesh("device", "register", "--did", did, "--node", node.url, env=env)
            assert registered.returncode == 0, registered.stderr
        epoch = _witnessed_epoch(node.url, devices)

        def closed() -> bool:
            listing = httpx.get(f"{node.url}/v1/reputation", timeout=30).json()
            return any(e["epoch"] == epoch for e in listing["epochs"])

        wait_until(closed, "the node to close the witnessed epoch")
        rpc = node.info.get("rpc") or f"{node.url}/rpc"
        client = ChainClient(rpc_web3(rpc), Account.create())
        contract = ReputationContract(client, node.info["contracts"]["Reputation"])
        wait_until(lambda: contract.root(epoch) != bytes(32), "the node to post the table")
        served = httpx.get(f"{node.url}/v1/reputation/{dids[2]}", params={"epoch": epoch}).json()
        assert served["epoch"] == epoch
        assert served["posted"] == {"root": served["score_root"], "final": False}  # in its window
        explained = served["explanation"]
        assert explained["counts"]["readings_logged"] == 9  # 5 readings, a challenge, 3 answers
        assert explained["counts"]["witnessed"] > 0 and explained["attesters"]
        # the score is in the table: its leaf and proof give the served root
        leaf = leaf_hash(
            encode(
                ["bytes32", "uint256", "uint256"],
                [subject_id(dids[2]), served["epoch"], served["score"]],
            )
        )
        check_proof(
            [bytes.fromhex(h) for h in served["proof"]], bytes.fromhex(served["score_root"]), leaf
        )
        # later epochs (no readings) keep forgetting; the witnessed one ranks the liar last
        at_epoch = {
            did: httpx.get(f"{node.url}/v1/reputation/{did}", params={"epoch": epoch}).json()
            for did in dids
        }
        assert at_epoch[dids[0]]["score"] < min(at_epoch[d]["score"] for d in dids[2:])
        assert at_epoch[dids[1]]["explanation"]["counts"]["seq_gap"] == 1
        assert at_epoch[dids[0]]["explanation"]["counts"]["witness_disagrees"] > 0
        device = httpx.get(f"{node.url}/v1/devices/{dids[2]}").json()
        assert device["reputation"] is not None and 0 < device["reputation"] <= 1
        assert _score(node.url, dids[0])["id"] == subject_id(dids[0]).hex()
        # the node itself is scored too: its stake, and the anchors it kept each epoch
        # (by the chain's block time, which runs ahead of the wall clock when blocks crowd)
        node_id = origin_id(node.info["origin"]).hex()

        def anchors_counted() -> bool:
            epochs = httpx.get(f"{node.url}/v1/reputation").json()["epochs"]
            return any(_anchors(node.url, node_id, e["epoch"]) for e in epochs[-8:])

        if chain == "embedded":  # the session's anvil runs hours ahead: other tests advance
            # its time, so its anchors fall in epochs this node will not close for hours
            wait_until(anchors_counted, "an epoch that counts the node's anchors")

        roots = _recomputed(node.url, epoch, contract)
        _watched(node.url, tmp_path / "watcher", epoch, roots)
        _refusals(node.url, dids[0])

    if store != "sqlite":
        return  # (the fixture gives every start a fresh PostgreSQL database)
    # after a restart the node rebuilds the very same tables from its log
    with node_process(data_dir, request.getfixturevalue, **options) as node:
        listing = httpx.get(f"{node.url}/v1/reputation", timeout=30).json()
        rebuilt = {e["epoch"]: e.get("score_root") for e in listing["epochs"]}
        assert all(rebuilt[e] == root for e, root in roots.items() if e in rebuilt)
        assert rebuilt[epoch] == roots[epoch]


def _recomputed(url: str, epoch: int, contract: ReputationContract) -> dict[int, str]:
    """Anyone: the log's entries and the chain's stakes give the node's tables, and
    the one posted; the table as published rebuilds to the posted root. The roots."""
    result = trustmesh("reputation", "recompute", "--node", url)
    no_traceback(result)
    assert result.returncode == 0, result.stderr.decode()
    document = json.loads(result.stdout)
    assert document["checked"] >= 1 and document["differing"] == []
    assert document["invalid_entries"] == 0
    (witnessed,) = [e for e in document["epochs"] if e["epoch"] == epoch]
    assert witnessed["agrees"] is True
    assert witnessed["onchain"] == {"root": witnessed["score_root"], "agrees": True}
    table = httpx.get(f"{url}/v1/reputation/epochs/{epoch}").json()
    assert rebuild(table, Params()).score_root == contract.root(epoch)
    return {e["epoch"]: e["score_root"] for e in document["epochs"]}


def _watched(url: str, mirror: Path, epoch: int, roots: dict[int, str]) -> None:
    """A watcher recomputes every epoch from the log it mirrors, each tick."""
    watched = trustmesh("watch", "--node", url, "--once", "--data-dir", mirror)
    assert watched.returncode == 0, watched.stderr.decode()
    lines = [json.loads(line) for line in watched.stdout.decode().splitlines()]
    checked = {d["epoch"]: d for d in lines if d.get("event") == "reputation"}
    assert checked[epoch]["agrees"] is True and checked[epoch]["onchain"]["agrees"] is True
    assert all(checked[e]["score_root"] == root for e, root in roots.items())
    assert not [d for d in lines if d.get("event") == "alert"]


def _refusals(url: str, did: str) -> None:
    """What a client sends wrong gets a problem, not a 500."""
    for path, status in (
        ("/v1/reputation/did:key:nope", 400),
        (f"/v1/reputation/{'00' * 32}", 404),
        (f"/v1/reputation/{did}?epoch=abc", 400),
        (f"/v1/reputation/{did}?epoch=1", 404),
        ("/v1/reputation/epochs/1", 404),
        ("/v1/reputation/epochs/x", 400),
    ):
        answer = httpx.get(url + path)
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


def test_a_node_without_reputation_says_so(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with node_process(tmp_path / "node", request.getfixturevalue, reputation_epoch=0) as node:
        answer = httpx.get(f"{node.url}/v1/reputation")
        assert answer.status_code == 501
        assert "no reputation" in answer.json()["detail"]
        result = trustmesh("reputation", "recompute", "--node", node.url)
        no_traceback(result)
        assert result.returncode == 2 and b"keeps no reputation tables" in result.stderr
