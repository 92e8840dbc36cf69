"""The chain client: nonces under concurrent senders, chain-id checks, clear
errors for unreachable chains and reverts."""

from __future__ import annotations

import threading

import pytest
from eth_account import Account
from hexbytes import HexBytes

from tests.chain.conftest import MIN_STAKE, Net
from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
from trustmesh.chain.suite import Registry
from trustmesh.errors import ChainError, Reverted
from trustmesh.identity import SoftwareSigner, did_from_key


def test_concurrent_senders_share_one_nonce_sequence(net: Net) -> None:
    registry = Registry(net.owner, net.deployment)
    dids = [did_from_key(SoftwareSigner.generate().public_key) for _ in range(12)]
    errors: list[BaseException] = []

    def register(chunk: list[str]) -> None:
        try:
            for did in chunk:
                registry.register_device(did, MIN_STAKE)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(dids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(registry.device(did)["status"] == "active" for did in dids)


def test_wrong_chain_id_is_refused(net: Net) -> None:
    with pytest.raises(ChainError, match="expected chain id 1"):
        ChainClient(net.w3, net.owner.account, chain_id=1)


def test_unreachable_chain_is_a_clear_error() -> None:
    with pytest.raises(ChainError, match="unreachable"):
        ChainClient(rpc_web3("http://127.0.0.1:9", timeout=2), Account.create())
    with pytest.raises(ChainError, match="http"):
        rpc_web3("ws://127.0.0.1:9")


def test_sender_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("TRUSTMESH_CHAIN_KEY", raising=False)
    with pytest.raises(ChainError, match="no sender key"):
        account_from_env_or_file(None, None)
    monkeypatch.setenv("TRUSTMESH_CHAIN_KEY", "not a key")
    with pytest.raises(ChainError, match="not a valid private key"):
        account_from_env_or_file(None, None)
    account = Account.create()
    monkeypatch.setenv("TRUSTMESH_CHAIN_KEY", account.key.hex())
    assert account_from_env_or_file(None, None).address == account.address
    from pathlib import Path

    key_file = Path(str(tmp_path)) / "key.json"
    key_file.write_text(__import__("json").dumps(Account.encrypt(account.key, "pw")))
    assert account_from_env_or_file(key_file, "pw").address == account.address
    with pytest.raises(ChainError, match="cannot open"):
        account_from_env_or_file(key_file, "wrong")
    with pytest.raises(ChainError, match="needs a password"):
        account_from_env_or_file(key_file, None)


def test_a_revert_without_a_reason_says_so(net: Net) -> None:
    """A call no function of the contract takes reverts with no data: the error
    says that, on either chain (not the empty bytes' repr, not the RPC's words)."""
    registry = net.deployment.contracts["Registry"]
    with pytest.raises(Reverted) as caught, net.owner.errors("calling nothing"):
        net.w3.eth.call({"to": registry, "data": HexBytes("0xdeadbeef")})
    assert str(caught.value) == "reverted without a reason"
