"""A node on the embedded chain bundles its devices' user operations: a device
pays from its own wallet with `trustmesh device wallet`, through the node's
`/bundler` (the ERC-4337 JSON-RPC methods), and bad requests get JSON-RPC
errors, never a traceback or a payment."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account import Account

from tests.cli.command import no_traceback, trustmesh
from tests.node.conftest import RunningNode
from trustmesh.chain.accounts import account_address
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.embedded import dev_keys
from trustmesh.identity import SoftwareSigner

PAYEE = "0x" + "5e" * 20


def _rpc(url: str, method: str, *params: object) -> dict[str, object]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer: dict[str, object] = httpx.post(url, json=body, timeout=30, follow_redirects=True).json()
    return answer


def test_a_device_pays_from_its_wallet_through_the_node(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    node = start_node()
    keystore = tmp_path / "device.keystore"
    created = trustmesh("device", "new", "--keystore", keystore)
    assert created.returncode == 0, created.stderr
    did = created.stdout.decode().strip()
    by_key = trustmesh("device", "wallet", "address", "--keystore", keystore)
    by_did = trustmesh("device", "wallet", "address", "--did", did)
    assert by_key.returncode == by_did.returncode == 0, by_key.stderr
    address = json.loads(by_key.stdout)["address"]
    assert json.loads(by_did.stdout) == {"did": did, "address": address}
    # an empty wallet cannot pay for its own operation: refused, nothing sent
    broke = trustmesh(
        "device", "wallet", "pay", "--keystore", keystore, "--node", node.url,
        "--to", PAYEE, "--amount", "1000",
    )  # fmt: skip
    no_traceback(broke)
    assert broke.returncode == 1 and b"enough balance" in broke.stderr, broke.stderr
    w3 = rpc_web3(node.url + "/rpc")
    funder = ChainClient(w3, Account.from_key(dev_keys()[5]))
    funder.send_raw(address, b"", "funding the wallet", value=10**18)
    paid = trustmesh(
        "device", "wallet", "pay", "--keystore", keystore, "--node", node.url,
        "--to", PAYEE, "--amount", "1000",
    )  # fmt: skip
    assert paid.returncode == 0, paid.stderr
    assert json.loads(paid.stdout)["amount"] == 1000
    assert w3.eth.get_balance(w3.to_checksum_address(PAYEE)) == 1000
    state = trustmesh("device", "wallet", "balance", "--keystore", keystore, "--node", node.url)
    assert state.returncode == 0, state.stderr
    document = json.loads(state.stdout)
    assert document["deployed"] is True and document["nonce"] == 1
    assert 0 < document["balance"] + document["deposit"] < 10**18 - 1000


def test_bad_bundler_requests_get_json_rpc_errors(start_node: Callable[..., RunningNode]) -> None:
    node = start_node()
    url = node.url + "/bundler"
    assert _rpc(url, "eth_supportedEntryPoints")["result"] == [
        "0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108"
    ]
    garbage = httpx.post(url, content=b"{not json", timeout=30, follow_redirects=True)
    assert garbage.status_code == 200 and garbage.json()["error"]["code"] == -32700
    assert _rpc(url, "eth_sendTransaction")["error"]["code"] == -32601  # type: ignore[index]
    malformed = _rpc(url, "eth_sendUserOperation", {"sender": "0x12"}, "0x" + "43" * 20)
    assert malformed["error"]["code"] == -32602  # type: ignore[index]
    device = SoftwareSigner.generate()
    op = {
        "sender": account_address(device.public_key), "nonce": "0x0", "callData": "0x",
        "callGasLimit": "0x0", "verificationGasLimit": "0x30000",
        "preVerificationGas": "0x20000", "maxFeePerGas": "0x77359400",
        "maxPriorityFeePerGas": "0x3b9aca00", "signature": "0x" + "00" * 64,
    }  # fmt: skip
    wrong_entry_point = _rpc(url, "eth_sendUserOperation", op, "0x" + "43" * 20)
    assert wrong_entry_point["error"]["code"] == -32602  # type: ignore[index]
    unpaid = {**op, "maxFeePerGas": "0x0", "maxPriorityFeePerGas": "0x0"}
    free = _rpc(url, "eth_sendUserOperation", unpaid, "0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108")
    assert free["error"]["code"] == -32500  # type: ignore[index]
    assert "bundler would pay" in free["error"]["message"]  # type: ignore[index]
    refused = _rpc(url, "eth_sendUserOperation", op, "0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108")
    assert refused["error"]["code"] == -32500  # type: ignore[index]
    assert "AA20" in refused["error"]["message"]  # type: ignore[index]  # (not deployed)
    unknown = _rpc(url, "eth_getUserOperationReceipt", "0x" + "ab" * 32)
    assert unknown["result"] is None
