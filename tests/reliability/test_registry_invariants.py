"""The Registry's stake accounting as a hypothesis state machine on the embedded
chain: devices and nodes registered by two owners, stake added, revoked or
retired, slashed (the deployer stands in for Disputes) while active or
unbonding, withdrawn, the clock moved, in any order and by anyone. After every
step the contract holds exactly the live stakes plus what was slashed and kept;
each call succeeds exactly when the rules say it may (the owner only, the active
only, not before the unbonding ends), a withdrawal pays the owner what is left
after slashes and nothing else, and a slash pays its reporter its share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.reliability.budget import invariant_settings, planted_settings
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import Deployment, Registry, deploy_suite, device_id, origin_id
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.note_p256 import LogSigner

MIN_STAKE = 10**15
UNBONDING = 3600
REWARD_BPS = 4000
SLACK = 30  # seconds of the next block's time that a prediction cannot know


@dataclass
class Record:
    owner: int  # which of the two owners
    stake: int
    node: bool = False  # a node's (an origin), else a device's (a DID)
    status: str = "active"
    unbond_at: int = 0


def _machine(chain: EmbeddedChain, planted: bool = False) -> type[RuleBasedStateMachine]:
    """The machine; ``planted``: it believes a registration's stake is not held."""
    w3 = chain.w3
    deployer, *owners, reporter = (
        ChainClient(w3, account, advance_time=chain.advance_time)
        for account in chain.dev_accounts[:4]
    )

    class Registries(RuleBasedStateMachine):
        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.deployment: Deployment = deploy_suite(
                deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING,
                reward_bps=REWARD_BPS, with_disputes=False,
            )  # fmt: skip
            self.registries = [Registry(client, self.deployment) for client in owners]
            self.contract = self.registries[0].contract
            deployer.transact(self.contract.functions.set_disputes(deployer.address))
            self.records: dict[str, Record] = {}
            self.kept = 0  # slashed and not paid out

        def _now(self) -> int:
            return int(w3.eth.get_block("latest")["timestamp"])

        def _id(self, name: str) -> bytes:
            return origin_id(name) if self.records[name].node else device_id(name)

        def _read(self, name: str) -> dict[str, Any]:
            registry = self.registries[0]
            return registry.node(name) if self.records[name].node else registry.device(name)

        @rule(target=ids, who=st.integers(0, 1), extra=st.integers(0, 10**6))
        def register(self, who: int, extra: int) -> str:
            did = did_from_key(SoftwareSigner.generate().public_key)
            self.registries[who].register_device(did, MIN_STAKE + extra)
            self.records[did] = Record(who, MIN_STAKE + extra)
            return did

        @rule(target=ids, who=st.integers(0, 1), extra=st.integers(0, 10**6))
        def register_node(self, who: int, extra: int) -> str:
            origin = f"log.example/{len(self.records)}"
            signer = LogSigner.from_seed(origin, len(self.records).to_bytes(32, "big"))
            self.registries[who].register_log(signer, "http://127.0.0.1", MIN_STAKE + extra)
            self.records[origin] = Record(who, MIN_STAKE + extra, node=True)
            return origin

        @rule(did=ids, amount=st.integers(0, 10**6))
        def add_stake(self, did: str, amount: int) -> None:
            record = self.records[did]
            call = self.contract.functions.add_stake(self._id(did))
            if record.status == "active":
                owners[record.owner].transact(call, amount)
                record.stake += amount
            else:
                with pytest.raises(Reverted, match="registry: not active"):
                    owners[record.owner].transact(call, amount)

        @rule(did=ids, who=st.integers(0, 1))
        def revoke(self, did: str, who: int) -> None:
            record = self.records[did]
            registry = self.registries[who]
            stop = registry.retire_node if record.node else registry.revoke
            if record.status == "active" and who == record.owner:
                stop(did)
                record.status = "revoked"
                record.unbond_at = int(self._read(did)["unbond_at"])
            else:
                with pytest.raises(Reverted, match="registry: (.* not active|only the owner)"):
                    stop(did)

        @rule(did=ids, amount=st.integers(1, 2 * MIN_STAKE))
        def slash(self, did: str, amount: int) -> None:
            record = self.records[did]
            slash = self.contract.functions.slash_node if record.node else (
                self.contract.functions.slash_device)  # fmt: skip
            call = slash(self._id(did), amount, reporter.address)
            if record.stake == 0:
                with pytest.raises(Reverted, match="registry: nothing to slash"):
                    deployer.transact(call)
                return
            before = reporter.balance()
            deployer.transact(call)
            taken = min(amount, record.stake)
            reward = taken * REWARD_BPS // 10_000
            record.stake -= taken
            self.kept += taken - reward
            assert reporter.balance() == before + reward  # (the reporter sends nothing)

        @rule(did=ids, who=st.integers(0, 1))
        def withdraw(self, did: str, who: int) -> None:
            record = self.records[did]
            now = self._now()
            if record.status == "revoked" and now < record.unbond_at <= now + SLACK:
                return  # too close to the unbonding's end to say which side the block falls
            registry = self.registries[who]
            if record.status == "revoked" and record.unbond_at <= now and who == record.owner:
                before = owners[who].balance()
                receipt = registry.withdraw(self._id(did))
                paid = owners[who].balance() - before + receipt["gasUsed"] * receipt[
                    "effectiveGasPrice"]  # fmt: skip
                assert paid == record.stake  # what is left after slashes, nothing else
                record.stake, record.status = 0, "withdrawn"
            else:
                with pytest.raises(Reverted):
                    registry.withdraw(self._id(did))

        @precondition(lambda self: bool(self.records))
        @rule(seconds=st.sampled_from([1, 600, UNBONDING + SLACK + 1]))
        def wait(self, seconds: int) -> None:
            chain.advance_time(seconds)

        @invariant()
        def stake_is_fully_accounted_for(self) -> None:
            registry = self.registries[0]
            for did, record in self.records.items():
                onchain = self._read(did)
                assert (onchain["stake"], onchain["status"]) == (record.stake, record.status)
            kept = deployer.call(self.contract.functions.slashed_total())
            assert kept == self.kept
            staked = 0 if planted else sum(record.stake for record in self.records.values())
            held = staked + self.kept
            assert deployer.balance(registry.address) == held

    return Registries


def test_registry_stake_accounting_holds_under_any_sequence(chain: EmbeddedChain) -> None:
    run_state_machine_as_test(_machine(chain), settings=invariant_settings(examples=5, steps=25))


def test_the_machine_fails_on_a_planted_wrong_expectation(chain: EmbeddedChain) -> None:
    """The same machine, believing a registration's stake is not held:
    it must find a sequence that shows otherwise (so it can find a real slip)."""
    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            _machine(chain, planted=True), settings=planted_settings(examples=30, steps=25)
        )
