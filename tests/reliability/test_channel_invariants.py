"""Channels as a hypothesis state machine on the embedded chain: a payer opens
channels to a payee and tops them up; vouchers signed by the payer or by a
stranger, for any amount, are settled and closed by the payee or by a stranger;
the payer asks for refunds before and after the expiry; time passes.

Every call succeeds exactly when the contract's rules allow it, and then moves
exactly what they say: no payment without the payer's signature, never more
than the deposit, never twice for the same voucher. After every step each
channel on-chain is the model's, and the contract holds exactly what open
channels have left: nothing created, nothing lost."""

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
from trustmesh.chain.channels import ChannelsContract, deploy_channels
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.errors import Reverted
from trustmesh.market.vouchers import Voucher, sign

LIFETIME = 3600
SLACK = 30  # seconds of the next block's time that a prediction cannot know


@dataclass
class Model:
    deposit: int
    expiry: int
    paid: int = 0
    closed: bool = False


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"] * receipt["effectiveGasPrice"])


def _machine(chain: EmbeddedChain, planted: bool = False) -> type[RuleBasedStateMachine]:
    """The machine; ``planted``: it believes an open channel's deposit is not held."""
    payer, payee, stranger = (
        ChainClient(chain.w3, account, advance_time=chain.advance_time)
        for account in chain.dev_accounts[:3]
    )

    class Channels(RuleBasedStateMachine):
        channels = Bundle("channels")

        def __init__(self) -> None:
            super().__init__()
            address = deploy_channels(payer)
            self.address = address
            self.as_ = {c.address: ChannelsContract(c, address) for c in (payer, payee, stranger)}
            self.model: dict[int, Model] = {}

        def _now(self) -> int:
            return int(chain.w3.eth.get_block("latest")["timestamp"])

        @rule(target=channels, deposit=st.integers(1, 10**6))
        def open(self, deposit: int) -> int:
            expiry = self._now() + LIFETIME
            channel = self.as_[payer.address].open(payee.address, deposit, expiry)
            self.model[channel] = Model(deposit, expiry)
            return channel

        @rule(channel=channels, amount=st.integers(0, 10**6), later=st.integers(0, 600))
        def top_up(self, channel: int, amount: int, later: int) -> None:
            model = self.model[channel]
            call = self.as_[payer.address]
            if model.closed:
                with pytest.raises(Reverted, match="Channels: channel closed"):
                    call.top_up(channel, amount, model.expiry + later)
                return
            call.top_up(channel, amount, model.expiry + later)
            model.deposit += amount
            model.expiry += later

        @rule(
            channel=channels,
            amount=st.integers(0, 2 * 10**6),
            signed_by=st.sampled_from(["payer", "stranger"]),
            sent_by=st.sampled_from(["payee", "stranger"]),
            closing=st.booleans(),
        )
        def redeem(
            self, channel: int, amount: int, signed_by: str, sent_by: str, closing: bool
        ) -> None:
            """A voucher settled (or the channel closed with it)."""
            model = self.model[channel]
            key = (payer if signed_by == "payer" else stranger).account
            assert key is not None
            signature = sign(Voucher(self.as_[payer.address].domain(), channel, amount), key)
            sender = payee if sent_by == "payee" else stranger
            contract = self.as_[sender.address]
            fresh = amount > model.paid
            allowed = (
                not model.closed
                and sent_by == "payee"
                and amount <= model.deposit
                and (amount >= model.paid if closing else fresh)
                and (signed_by == "payer" or not fresh)
            )
            before = {who.address: who.balance() for who in (payer, payee)}
            if not allowed:
                with pytest.raises(Reverted, match="Channels: "):
                    (contract.close if closing else contract.settle)(channel, amount, signature)
                return
            receipt = (contract.close if closing else contract.settle)(channel, amount, signature)
            got = payee.balance() - before[payee.address] + _gas(receipt)
            assert got == amount - model.paid  # the voucher's news, no more
            refunded = payer.balance() - before[payer.address]
            assert refunded == (model.deposit - amount if closing else 0)
            model.paid, model.closed = amount, closing

        @rule(channel=channels, sent_by=st.sampled_from(["payer", "stranger"]))
        def refund(self, channel: int, sent_by: str) -> None:
            model = self.model[channel]
            now = self._now()
            if not model.closed and now < model.expiry <= now + SLACK:
                return  # too close to the expiry to say which side the block falls
            sender = payer if sent_by == "payer" else stranger
            allowed = not model.closed and sent_by == "payer" and model.expiry <= now
            if not allowed:
                with pytest.raises(Reverted, match="Channels: "):
                    self.as_[sender.address].refund(channel)
                return
            before = payer.balance()
            receipt = self.as_[payer.address].refund(channel)
            assert payer.balance() - before + _gas(receipt) == model.deposit - model.paid
            model.closed = True

        @precondition(lambda self: bool(self.model))
        @rule(seconds=st.sampled_from([1, 600, LIFETIME + SLACK + 1]))
        def wait(self, seconds: int) -> None:
            chain.advance_time(seconds)

        @invariant()
        def every_channel_is_the_models_and_every_wei_accounted_for(self) -> None:
            held = 0
            for channel, model in self.model.items():
                onchain = self.as_[payer.address].channel(channel)
                assert (onchain.deposit, onchain.paid, onchain.closed) == (
                    model.deposit, model.paid, model.closed)  # fmt: skip
                held += 0 if model.closed or planted else model.deposit - model.paid
            assert payer.balance(self.address) == held

    return Channels


def test_no_payment_without_the_payers_signature(chain: EmbeddedChain) -> None:
    run_state_machine_as_test(_machine(chain), settings=invariant_settings(examples=6, steps=25))


def test_the_machine_fails_on_a_planted_wrong_expectation(chain: EmbeddedChain) -> None:
    """The same machine, believing an open channel's deposit is not held:
    it must find a sequence that shows otherwise (so it can find a real slip)."""
    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            _machine(chain, planted=True), settings=planted_settings(examples=30, steps=25)
        )
