"""``trustmesh chain deploy/status`` on the embedded chain and on anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chain.conftest import anvil_accounts
from tests.cli.test_cli import no_traceback, trustmesh


def test_deploy_and_status_on_the_embedded_chain(tmp_path: Path) -> None:
    first = trustmesh("chain", "deploy", "--data-dir", tmp_path)
    assert first.returncode == 0, first.stderr
    deployment = json.loads(first.stdout)
    assert set(deployment["contracts"]) == {"Registry", "LogAnchor"}
    assert (tmp_path / "deployments" / f"{deployment['chain_id']}.json").exists()
    again = trustmesh("chain", "deploy", "--data-dir", tmp_path)  # recorded: not redeployed
    assert json.loads(again.stdout) == deployment
    assert "already deployed" in again.stderr.decode()
    status = json.loads(trustmesh("chain", "status", "--data-dir", tmp_path).stdout)
    assert status["chain_id"] == deployment["chain_id"]
    assert status["contracts"] == deployment["contracts"]
    assert status["block"] == 2
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
    ],
)
def test_chain_errors_are_clear(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    result = trustmesh(*args, "--data-dir", tmp_path, env=env)
    no_traceback(result)
    assert result.returncode == code, result.stderr
    assert message in result.stderr.decode()
