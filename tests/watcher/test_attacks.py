"""Each kind of lie, end to end (`trustmesh sim attack`'s core): an honest setup,
the lie, a watcher that detects it, proves it on-chain, and the liar's stake
slashed with the reporter paid. On the embedded chain and on anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from tests.services import ANVIL_MNEMONIC
from trustmesh.chain.client import rpc_web3
from trustmesh.sim.attack import REWARD_BPS, ChainSetup, embedded_setup, run_attack

LIES = ["invalid-entry", "equivocation", "split-view", "broken-receipt", "stall"]
EPOCH = 1.0


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


@pytest.mark.parametrize("kind", LIES)
def test_each_lie_is_detected_proven_and_slashed(chain: ChainSetup, kind: str) -> None:
    result = run_attack(kind, chain, epoch=EPOCH, seed=7)
    assert result["detected"], result
    assert result["proof_accepted"], result
    assert result["stake_before"] > 0
    assert result["stake_after"] == 0
    assert result["reporter_reward"] == result["stake_before"] * REWARD_BPS // 10_000
    assert result["latency_ms"] >= 0
    assert result["other_alerts"] == [], result


def test_an_honest_run_raises_no_alert(chain: ChainSetup) -> None:
    result = run_attack("none", chain, epoch=EPOCH, seed=3, honest_seconds=4 * EPOCH)
    assert result["audited"] > 0 and min(result["anchored"]) > 0, result
    assert (result["alerts"], result["proofs"]) == (0, 0), result
