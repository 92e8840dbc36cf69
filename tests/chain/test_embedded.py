"""The embedded chain: state survives a restart and a SIGKILL; one process at a
time; other processes reach it over JSON-RPC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3

from tests.chain.conftest import MIN_STAKE
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.embedded import CHAIN_ID, EmbeddedChain
from trustmesh.chain.suite import Registry, deploy_suite
from trustmesh.errors import ChainError, Reverted
from trustmesh.identity import SoftwareSigner, did_from_key


def test_restart_continues_with_nothing_lost(tmp_path: Path) -> None:
    chain = EmbeddedChain.open(tmp_path)
    client = ChainClient(chain.w3, chain.dev_account)
    deployment = deploy_suite(client)
    did = did_from_key(SoftwareSigner.generate().public_key)
    Registry(client, deployment).register_device(did, 10**16)
    block = chain.w3.eth.block_number
    chain.close()

    chain = EmbeddedChain.open(tmp_path)
    assert chain.w3.eth.block_number == block
    assert chain.w3.eth.chain_id == CHAIN_ID
    client = ChainClient(chain.w3, chain.dev_account)
    registry = Registry(client, deployment)
    assert registry.device(did)["status"] == "active"
    again = did_from_key(SoftwareSigner.generate().public_key)
    registry.register_device(again, 10**16)  # nonces continue too
    assert chain.w3.eth.block_number == block + 1
    chain.close()


WRITER = """
import sys
from pathlib import Path
from trustmesh.chain.embedded import EmbeddedChain
chain = EmbeddedChain.open(Path(sys.argv[1]))
sender, receiver = chain.dev_accounts[0].address, chain.dev_accounts[1].address
while True:
    tx = chain.w3.eth.send_transaction({"from": sender, "to": receiver, "value": 1})
    chain.w3.eth.wait_for_transaction_receipt(tx)
    print(chain.w3.eth.block_number, flush=True)   # acknowledged: mined and on disk
"""


def test_sigkill_loses_no_acknowledged_block(tmp_path: Path) -> None:
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        acknowledged = 0
        for _ in range(15):
            line = writer.stdout.readline()
            assert line, "the writer died on its own"
            acknowledged = int(line)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        chain = EmbeddedChain.open(tmp_path)
        head = chain.w3.eth.block_number
        assert head >= acknowledged
        receiver = chain.dev_accounts[1].address
        genesis_balance = chain.w3.eth.get_balance(receiver, 0)
        # Every mined block carries exactly one 1-wei transfer: state and head agree.
        assert chain.w3.eth.get_balance(receiver) == genesis_balance + head
        chain.close()


def test_second_process_is_refused(tmp_path: Path) -> None:
    chain = EmbeddedChain.open(tmp_path)
    with pytest.raises(ChainError, match="open in another process"):
        EmbeddedChain.open(tmp_path)
    chain.close()
    EmbeddedChain.open(tmp_path).close()  # free again once closed


def test_serve_shares_the_chain_over_json_rpc(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trustmesh",
            "chain",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        assert ready["chain_id"] == CHAIN_ID
        url = ready["rpc"]
        w3 = rpc_web3(url)
        assert w3.eth.chain_id == CHAIN_ID
        # A client in another process deploys and uses the suite through it.
        key = bytes(31) + b"\x01"  # the embedded chain's first development key
        from eth_account import Account

        client = ChainClient(w3, Account.from_key(key), chain_id=CHAIN_ID)
        deployment = deploy_suite(client)
        registry = Registry(client, deployment)
        did = did_from_key(SoftwareSigner.generate().public_key)
        registry.register_device(did, 10**16)
        assert registry.device(did)["stake"] == 10**16
        with pytest.raises(Reverted, match="registry: device exists"):
            registry.register_device(did, 10**16)
        # Malformed JSON-RPC gets JSON-RPC errors, not HTTP failures.
        answer = requests.post(url, data=b"{not json", timeout=5).json()
        assert answer["error"]["code"] == -32700
        answer = requests.post(
            url, json={"jsonrpc": "2.0", "id": 3, "method": "admin_x"}, timeout=5
        ).json()
        assert answer["error"]["code"] == -32601
        batch: list[Any] = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []} for i in range(3)
        ]
        assert [a["id"] for a in requests.post(url, json=batch, timeout=5).json()] == [0, 1, 2]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    chain = EmbeddedChain.open(tmp_path)  # the served chain kept everything
    assert Web3.to_checksum_address(deployment.contracts["Registry"])
    assert (
        Registry(ChainClient(chain.w3, chain.dev_account), deployment).device(did)["status"]
        == "active"
    )
    chain.close()


def test_min_stake_default_is_enforced(embedded: EmbeddedChain) -> None:
    client = ChainClient(embedded.w3, embedded.dev_account)
    registry = Registry(client, deploy_suite(client, min_stake=MIN_STAKE))
    assert registry.min_stake() == MIN_STAKE
