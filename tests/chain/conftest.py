"""Chains for the contract suite: the embedded chain, and a real anvil node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests.services import ANVIL_MNEMONIC, alto_bundler
from trustmesh.chain.accounts import deploy_account_contracts
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import Deployment, LogAnchor, Registry, deploy_suite
from trustmesh.identity import Alg, SoftwareSigner, did_from_key

MIN_STAKE = 10**15
UNBONDING = 3600
REWARD_BPS = 4000


@dataclass
class Net:
    """A chain with the suite freshly deployed, and clients for three accounts."""

    kind: str
    w3: Web3
    deployer: ChainClient  # also plays the Disputes contract where a test needs it
    owner: ChainClient
    reporter: ChainClient
    deployment: Deployment

    def registry(self, client: ChainClient | None = None) -> Registry:
        return Registry(client or self.owner, self.deployment)

    def anchor(self, client: ChainClient | None = None) -> LogAnchor:
        return LogAnchor(client or self.owner, self.deployment)


def new_did(alg: Alg = Alg.ES256) -> str:
    """A fresh device's did:key."""
    return did_from_key(SoftwareSigner.generate(alg).public_key)


def anvil_accounts(indexes: range = range(3)) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in indexes
    ]


@pytest.fixture(scope="session")
def alto_url(anvil_url: str) -> Iterator[str]:
    """Alto in front of the session's anvil, with the EntryPoint and the device
    account contracts deployed first (anvil's accounts 7 to 9 are Alto's)."""
    deployer, executor, utility = anvil_accounts(range(7, 10))
    deploy_account_contracts(ChainClient(rpc_web3(anvil_url), deployer))
    with alto_bundler(anvil_url, "0x" + executor.key.hex(), "0x" + utility.key.hex()) as url:
        yield url


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain.open(tmp_path / "chain")
    yield chain
    chain.close()


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def net(request: pytest.FixtureRequest, tmp_path: Path) -> Net:
    if request.param == "embedded":
        chain: EmbeddedChain = request.getfixturevalue("embedded")
        w3, accounts, advance = chain.w3, chain.dev_accounts[:3], chain.advance_time
    else:
        w3, accounts, advance = (
            rpc_web3(request.getfixturevalue("anvil_url")),
            anvil_accounts(),
            None,
        )
    deployer, owner, reporter = (ChainClient(w3, a, advance_time=advance) for a in accounts)
    deployment = deploy_suite(
        deployer,
        min_stake=MIN_STAKE,
        unbonding_delay=UNBONDING,
        reward_bps=REWARD_BPS,
        with_disputes=False,  # the Registry tests name their own slashing caller
    )
    return Net(request.param, w3, deployer, owner, reporter, deployment)
