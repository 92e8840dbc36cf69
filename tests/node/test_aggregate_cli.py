"""``trustmesh aggregate claim|verify|challenge`` against a real node on its
embedded chain: a claim computed from the node's anchored log and posted with its
data kept at the node; verify recomputes it (true); a lying claim is proven by
``challenge``; bad input is refused by name, with no traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account import Account

from tests.aggregate.lies import lies
from tests.cli.command import no_traceback, trustmesh
from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.aggregate.claim import decode, encode
from trustmesh.chain.aggregates import AggregatesContract
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.embedded import dev_keys
from trustmesh.chain.suite import Deployment, LogAnchor, Registry
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.reading import sign_reading

TS = int(time.time() * 1000)  # the node takes readings near its own clock


def _claim_args(node: RunningNode, dids: list[str], *extra: str) -> list[str]:
    devices = [arg for did in dids for arg in ("--device", did)]
    return ["aggregate", "claim", "--node", node.url, *devices, "--sensor", "temperature",
            "--start", str(TS), "--end", str(TS + 100), "--model", "threshold:30",
            "--reduction", "sum", *extra]  # fmt: skip


def test_claim_verify_and_challenge_through_a_node(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    node = start_node(epoch=0.5)
    w3 = rpc_web3(node.url + "/rpc")
    owner = ChainClient(w3, Account.from_key(dev_keys()[3]))
    deployment = Deployment(int(node.info["chain_id"]), dict(node.info["contracts"]))
    devices = [SoftwareSigner.generate() for _ in range(3)]
    dids: list[str] = [did_from_key(d.public_key) for d in devices]
    Registry(owner, deployment).register_devices(dids, Registry(owner, deployment).min_stake())
    readings = [sign_reading(d, seq=seq, ts=TS + seq, sensor="temperature", value=24 + seq + k)
                for seq in range(1, 5) for k, d in enumerate(devices)]  # fmt: skip
    posted = httpx.post(f"{node.url}/v1/readings", content=b"".join(readings),
                        headers={"content-type": "application/cbor-seq"}, timeout=60)  # fmt: skip
    assert posted.status_code == 200, posted.text
    anchor = LogAnchor(owner, deployment)
    wait_until(lambda: anchor.latest(node.info["origin"])[0] >= 12, "the anchor", seconds=60)

    dry = trustmesh(*_claim_args(node, dids), "--dry-run")
    no_traceback(dry)
    assert dry.returncode == 0, dry.stderr.decode()
    expected = sum(1 for seq in range(1, 5) for k in range(3) if 24 + seq + k >= 30)
    assert (json.loads(dry.stdout)["result"], json.loads(dry.stdout)["count"]) == (expected, 12)

    # the same devices, named by the address that registered them
    owned = trustmesh(*_claim_args(node, [], "--owner", owner.address, "--dry-run"))
    assert owned.returncode == 0, owned.stderr.decode()
    assert json.loads(owned.stdout) == json.loads(dry.stdout)

    env = {"TRUSTMESH_CHAIN_KEY": dev_keys()[6]}
    made = trustmesh(*_claim_args(node, dids), env=env)
    assert made.returncode == 0, made.stderr.decode()
    claim = json.loads(made.stdout)
    assert claim["uri"].startswith(node.url + "/v1/aggregates/")
    checked = trustmesh("aggregate", "verify", claim["claim_id"], "--node", node.url)
    assert checked.returncode == 0, checked.stderr.decode()
    assert json.loads(checked.stdout)["status"] == "true"
    assert json.loads(checked.stdout)["state"] == "pending"

    # a lie: the honest data, posted with another result
    honest = decode(httpx.get(claim["uri"]).content)
    data, result, count = lies(honest, honest.tree.leaves[0])["omitted"]
    kept = httpx.post(f"{node.url}/v1/aggregates", content=encode(data),
                      headers={"content-type": "application/cbor"})  # fmt: skip
    assert kept.status_code == 201, kept.text
    contract = AggregatesContract(owner, deployment.contracts["Aggregates"])
    lie_id, _ = contract.post(data.to_abi(), result, count, node.url + kept.json()["path"])
    judged = trustmesh("aggregate", "verify", "0x" + lie_id.hex(), "--node", node.url)
    assert judged.returncode == 1 and json.loads(judged.stdout)["lie"]["kind"] == "omitted"
    proven = trustmesh("aggregate", "challenge", "0x" + lie_id.hex(), "--node", node.url, env=env)
    assert proven.returncode == 1, proven.stderr.decode()
    document = json.loads(proven.stdout)
    assert document["state"] == "refuted" and document["proven"]["kind"] == "omitted"
    assert contract.state(lie_id).state == "refuted"
    panel = httpx.get(f"{node.url}/ui/aggregates").text  # the dashboard lists both
    assert "<strong id='claim-count'>2</strong>" in panel
    assert f"title='{claim['claim_id']}'" in panel and f"title='0x{lie_id.hex()}'" in panel
    assert panel.count("class='claim pending'") == 1 and panel.count("class='claim refuted'") == 1


def test_bad_input_is_refused_by_name(start_node: Callable[..., RunningNode]) -> None:
    node = start_node(epoch=0.5)
    did = did_from_key(SoftwareSigner.generate().public_key)
    cases = [
        (["aggregate", "verify", "0x1234", "--node", node.url], "64 hex digits"),
        (["aggregate", "verify", "0x" + "ab" * 32, "--node", node.url], "no claim"),
        (_claim_args(node, [did], "--model", "cubic:3", "--dry-run"), "unknown model"),
        (_claim_args(node, [did], "--reduction", "median", "--dry-run"), "--reduction"),
        (_claim_args(node, [did]), "--key-file"),  # posting needs a paying key
    ]
    for args, message in cases:
        result = trustmesh(*args)
        no_traceback(result)
        assert result.returncode == 2, (args, result.stderr.decode())
        assert message in result.stderr.decode(), (args, result.stderr.decode())
    shelf = f"{node.url}/v1/aggregates"
    assert httpx.post(shelf, content=b"\xa0", headers={"content-type": "application/cbor"}
                      ).status_code == 400  # fmt: skip
    assert httpx.post(shelf, content=b"{}", headers={"content-type": "application/json"}
                      ).status_code == 415  # fmt: skip
    assert httpx.get(f"{shelf}/{'0' * 64}").status_code == 404
    assert httpx.get(f"{shelf}/nothex").status_code == 400
