"""Each kind of lie, end to end (`trustmesh sim attack`'s core): an honest setup,
the lie, a watcher that detects it, proves it on-chain, and the liar's stake
slashed with the reporter paid. On the embedded chain and on anvil."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustmesh.sim.attack import REWARD_BPS, ChainSetup, embedded_setup, run_attack

LIES = ["invalid-entry", "equivocation", "split-view", "broken-receipt", "stall"]
EPOCH = 1.0


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


def test_an_anchor_that_is_not_the_watchers_tree_is_proven(tmp_path: Path) -> None:
    """A log that shows a watcher one tree and anchors another: the watcher, with no
    peer, finds it from the chain and proves it with its signed checkpoint of that size."""
    import httpx

    from trustmesh.chain.client import ChainClient
    from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite
    from trustmesh.identity import SoftwareSigner, did_from_key
    from trustmesh.log.note_p256 import LogSigner
    from trustmesh.reading import sign_reading
    from trustmesh.sim.lognode import SimLog
    from trustmesh.watcher.onchain import ChainView
    from trustmesh.watcher.service import Watcher

    with embedded_setup(tmp_path / "chain") as setup:
        operator, reporter = (ChainClient(setup.w3, a) for a in setup.accounts[::3])
        deployment = deploy_suite(operator, min_stake=10**15, reward_bps=REWARD_BPS)
        origin = "anchored.example/log"
        signer = LogSigner.from_seed(origin, bytes(range(32)))
        log = SimLog(
            signer, LogAnchor(operator, deployment), epoch=60, checkpoint_interval=60, views=2
        )
        Registry(operator, deployment).register_log(signer, log.url, 10**15)
        log.start()
        device = SoftwareSigner.generate()
        owner = ChainClient(setup.w3, setup.accounts[1])
        Registry(owner, deployment).register_device(did_from_key(device.public_key), 10**15)

        def reading(seq: int) -> bytes:
            return sign_reading(device, seq=seq, ts=1_800_000_000_000, sensor="t", value=seq)

        reports: list[dict[str, object]] = []
        with httpx.Client(timeout=10) as http:
            watcher = Watcher(
                [log.urls[1]], http, chain=ChainView(reporter, deployment), report=reports.append
            )
            for seq in range(5):
                log.append(reading(seq))
            log.diverge(reading(5), reading(6))
            log.sign()
            watcher.tick()  # the watcher sees the second view, size 6
            assert reports == []
            log.anchor_now()  # the chain gets the first view, size 6
            watcher.tick()
            watcher.close()
            log.stop()
        kinds = [(r["event"], r.get("kind", r.get("proof"))) for r in reports]
        assert kinds == [("alert", "split-view"), ("proof", "split-view")], reports
        assert reports[1]["accepted"] is True
        assert Registry(operator, deployment).node(origin)["stake"] == 0
