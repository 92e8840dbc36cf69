"""``trustmesh chain deploy/status`` on the embedded chain and on anvil."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.chain.conftest import anvil_accounts
from tests.cli.command import no_traceback, trustmesh


def test_deploy_and_status_on_the_embedded_chain(tmp_path: Path) -> None:
    first = trustmesh("chain", "deploy", "--data-dir", tmp_path)
    assert first.returncode == 0, first.stderr
    deployment = json.loads(first.stdout)
    assert set(deployment["contracts"]) == {
        "Registry", "LogAnchor", "Disputes", "Reputation", "Channels", "EntryPoint",
        "DeviceAccountFactory", "Aggregates", "AggregateModel",
    }  # fmt: skip
    assert (tmp_path / "deployments" / f"{deployment['chain_id']}.json").exists()
    again = trustmesh("chain", "deploy", "--data-dir", tmp_path)  # recorded: not redeployed
    assert json.loads(again.stdout) == deployment
    assert "already deployed" in again.stderr.decode()
    status = json.loads(trustmesh("chain", "status", "--data-dir", tmp_path).stdout)
    assert status["chain_id"] == deployment["chain_id"]
    assert status["contracts"] == deployment["contracts"]
    # Registry, LogAnchor, Disputes, wiring them, AggregateModel, Aggregates, Reputation,
    # Channels; the EntryPoint,
    # the device accounts' implementation and factory
    assert status["block"] == 11
    redeployed = json.loads(
        trustmesh("chain", "deploy", "--redeploy", "--data-dir", tmp_path).stdout
    )
    assert redeployed["contracts"] != deployment["contracts"]


@pytest.mark.anvil
def test_deploy_and_status_on_anvil(tmp_path: Path, anvil_url: str) -> None:
    env = {"TRUSTMESH_CHAIN_KEY": anvil_accounts()[2].key.hex()}
    deployed = trustmesh("chain", "deploy", "--rpc", anvil_url, "--data-dir", tmp_path, env=env)
    assert deployed.returncode == 0, deployed.stderr
    deployment = json.loads(deployed.stdout)
    assert deployment["chain_id"] == 31337
    status = json.loads(
        trustmesh("chain", "status", "--rpc", anvil_url, "--data-dir", tmp_path).stdout
    )
    assert status["contracts"] == deployment["contracts"]
    assert status["block"] >= 2


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (
            ["chain", "deploy", "--rpc", "http://127.0.0.1:9"],
            {"TRUSTMESH_CHAIN_KEY": "0x" + "11" * 32},
            1,
            "unreachable",
        ),
        (
            ["chain", "deploy", "--rpc", "http://127.0.0.1:9"],
            {"TRUSTMESH_CHAIN_KEY": ""},
            1,
            "no sender key",
        ),
        (["chain", "status", "--rpc", "http://127.0.0.1:9"], {}, 1, "unreachable"),
        (
            ["chain", "deploy", "--rpc", "ftp://x"],
            {"TRUSTMESH_CHAIN_KEY": "0x" + "11" * 32},
            1,
            "http(s) URL",
        ),
        (["chain", "deploy", "--reward-bps", "20000"], {}, 2, "--reward-bps"),
        (["chain", "deploy", "--chain-id", "1"], {}, 1, "expected chain id 1"),
        (["chain", "register-device", "--did", "did:key:zBad"], {}, 1, "did:key"),
    ],
)
def test_chain_errors_are_clear(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    result = trustmesh(*args, "--data-dir", tmp_path, env=env)
    no_traceback(result)
    assert result.returncode == code, result.stderr
    assert message in result.stderr.decode()


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain_args(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The options naming a chain, and the environment (sender key) for it."""
    if request.param == "embedded":
        return ["--data-dir", str(tmp_path / "data")], {}
    url: str = request.getfixturevalue("anvil_url")
    env = {"TRUSTMESH_CHAIN_KEY": anvil_accounts()[1].key.hex()}
    return ["--rpc", url, "--data-dir", str(tmp_path / "data")], env


def test_register_anchor_and_restart_through_the_cli(
    tmp_path: Path, chain_args: tuple[list[str], dict[str, str]]
) -> None:
    from eth_account import Account

    from trustmesh.chain.embedded import dev_keys
    from trustmesh.chain.suite import proof_key_message
    from trustmesh.log.note_p256 import LogSigner
    from trustmesh.log.store import open_store

    args, env = chain_args
    assert trustmesh("chain", "deploy", *args, env=env).returncode == 0
    new = trustmesh("device", "new", "--keystore", tmp_path / "device.keystore")
    did = new.stdout.decode().strip()
    registered = trustmesh("chain", "register-device", "--did", did, *args, env=env)
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["status"] == "active"

    origin = f"cli.example/{uuid.uuid4().hex[:8]}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    other = LogSigner.from_seed(origin + "x", os.urandom(32))
    mismatched = trustmesh(
        "chain", "register-node", "--verifier-key", signer.verifier.vkey,
        "--proof-key", other.p256.verifier.vkey, "--proof-signature", "00",
        "--url", "http://127.0.0.1:8080", *args, env=env,
    )  # fmt: skip
    assert mismatched.returncode != 0 and b"name different logs" in mismatched.stderr
    sender = anvil_accounts()[1].address if env else Account.from_key(dev_keys()[0]).address
    chain_id = int(json.loads(trustmesh("chain", "status", *args, env=env).stdout)["chain_id"])
    signature = signer.p256.sign_raw(proof_key_message(origin, sender, chain_id)).hex()
    unproven = trustmesh(
        "chain", "register-node", "--verifier-key", signer.verifier.vkey,
        "--proof-key", signer.p256.verifier.vkey, "--proof-signature", "00" * 64,
        "--url", "http://127.0.0.1:8080", *args, env=env,
    )  # fmt: skip
    assert unproven.returncode != 0 and b"proof key not proven" in unproven.stderr
    node = trustmesh(
        "chain", "register-node", "--verifier-key", signer.verifier.vkey,
        "--proof-key", signer.p256.verifier.vkey, "--proof-signature", signature,
        "--url", "http://127.0.0.1:8080", *args, env=env,
    )  # fmt: skip
    assert node.returncode == 0, node.stderr
    record = json.loads(node.stdout)
    assert record["checkpoint_key"] == signer.verifier.public_key.hex()
    assert record["proof_key"] == signer.p256.verifier.public_key.hex()

    store_path = tmp_path / "log.db"
    store = open_store(store_path)
    store.append([b"entry %d" % i for i in range(100)])
    first = trustmesh("chain", "anchor", "--store", store_path, "--origin", origin, *args, env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["size"] == 100
    store.append([b"entry %d" % i for i in range(100, 250)])
    store.close()
    second = json.loads(
        trustmesh(
            "chain", "anchor", "--store", store_path, "--origin", origin, *args, env=env
        ).stdout
    )
    assert (second["previous_size"], second["size"]) == (100, 250)
    again = json.loads(
        trustmesh(
            "chain", "anchor", "--store", store_path, "--origin", origin, *args, env=env
        ).stdout
    )
    assert again["transaction"] is None  # nothing new

    forked = open_store(tmp_path / "forked.db")  # a rewritten history of the same log
    forked.append([b"rewritten %d" % i for i in range(300)])
    forked.close()
    refused = trustmesh(
        "chain", "anchor", "--store", tmp_path / "forked.db", "--origin", origin, *args, env=env
    )
    no_traceback(refused)
    assert refused.returncode == 1
    assert "not the anchored root" in refused.stderr.decode()

    # A restart (a new process each time, here) finds everything where it was.
    record = json.loads(trustmesh("chain", "device", "--did", did, *args, env=env).stdout)
    assert record["status"] == "active"
    status = json.loads(trustmesh("chain", "status", *args, env=env).stdout)
    assert status["block"] >= 6
