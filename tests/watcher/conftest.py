"""The watcher's tests run real nodes (the node tests' fixture) and real chains."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from tests.node.conftest import start_node
from tests.services import ANVIL_MNEMONIC
from trustmesh.chain.client import rpc_web3
from trustmesh.sim.attack import ChainSetup, embedded_setup

__all__ = ["chain", "start_node"]


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainSetup]:
    if request.param == "embedded":
        with embedded_setup(tmp_path / "chain") as setup:
            yield setup
        return
    Account.enable_unaudited_hdwallet_features()
    accounts = [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(4)
    ]
    yield ChainSetup("anvil", rpc_web3(request.getfixturevalue("anvil_url")), accounts)
