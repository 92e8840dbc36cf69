"""A Safe (1.4.1, from npm @safe-global/safe-contracts) owned by two EOAs and a
device account, for the tests of Safe ownership (tests/chain/test_safe.py) and of a
Safe paying a node (tests/node/test_node_market.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from tests.conftest import REPO
from trustmesh.chain.accounts import deploy_account_contracts, factory_address, key_coordinates
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import Artifact, load_contract
from trustmesh.chain.safe import SafeContract
from trustmesh.identity import SoftwareSigner

ARTIFACTS = REPO / ".tools/node_modules/@safe-global/safe-contracts/build/artifacts/contracts"
ZERO = "0x" + "00" * 20


def _artifact(path: str) -> Artifact:
    file = ARTIFACTS / path
    if not file.is_file():
        pytest.fail("npm @safe-global/safe-contracts is not installed: run scripts/test")
    document = json.loads(file.read_text())
    return Artifact(document["contractName"], document["abi"],
                    bytes.fromhex(document["bytecode"][2:]), "")  # fmt: skip


@dataclass
class Owned:
    """A Safe, the two EOAs and the device (with its account) that own it."""

    safe: SafeContract
    eoas: list[LocalAccount]
    device: SoftwareSigner
    account: str  # the device's account, the Safe's third owner


def deploy_safe(client: ChainClient, threshold: int = 2) -> Owned:
    """A 2-of-3 Safe: two EOAs and a device account (deployed first)."""
    singleton = client.deploy_artifact(_artifact("Safe.sol/Safe.json"))
    factory_artifact = _artifact("proxies/SafeProxyFactory.sol/SafeProxyFactory.json")
    factory = client.contract(factory_artifact, client.deploy_artifact(factory_artifact))
    handler = client.deploy_artifact(
        _artifact("handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json")
    )
    deploy_account_contracts(client)
    device = SoftwareSigner.generate()
    x, y = key_coordinates(device.public_key)
    accounts = client.contract(load_contract("DeviceAccountFactory"), factory_address())
    account = str(client.call(accounts.functions.account_address(x, y)))
    client.transact(accounts.functions.create_account(x, y))
    eoas = [Account.create(), Account.create()]
    safe_abi = _artifact("Safe.sol/Safe.json").abi
    setup = client.w3.eth.contract(abi=safe_abi).encode_abi(
        "setup",
        args=[[e.address for e in eoas] + [account], threshold, ZERO, b"", handler, ZERO, 0, ZERO],
    )
    receipt = client.transact(
        factory.functions.createProxyWithNonce(singleton, bytes.fromhex(setup[2:]), 1)
    )
    created = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    return Owned(SafeContract(client, created[0]["args"]["proxy"]), eoas, device, account)
