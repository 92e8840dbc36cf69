"""Device accounts as a hypothesis state machine on the embedded chain: two
devices' ERC-4337 accounts (EntryPoint v0.8, the devices' own P-256 keys) are
funded in wei, in the EntryPoint and in tokens, and spend through ``handleOps``
with operations signed by the device, by a stranger's key, for another chain or
EntryPoint, cut short, or with the call changed after signing; with the next
nonce, one ahead or one spent, and replayed whole; while strangers call the
account, its validation and the EntryPoint directly, and an owner the device
named recovers.

Every operation is sent on-chain whatever a bundler would say of it, and lands
exactly when the EntryPoint's rules allow (deployed or deploying, its prefund
paid, the next nonce, the device's signature), refused with the EntryPoint's
own code otherwise; a refusal changes nothing, not even the nonce. What leaves
an account is what its call sends, plus what the EntryPoint charges for gas,
which goes to the bundle's beneficiary and never exceeds the prefund the
device signed for: after every step the accounts, their deposits, the payees
and the beneficiary hold exactly all that was ever funded, in wei and in
tokens, and the EntryPoint holds the deposits and nothing else."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from tests.reliability.budget import invariant_settings, planted_settings
from trustmesh.chain.accounts import (
    account_address,
    create_account_call,
    deploy_account_contracts,
    factory_address,
)
from trustmesh.chain.bundler import LocalBundler
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.entrypoint import ENTRY_POINT, entry_point_artifact
from trustmesh.chain.userop import UserOperation
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner

NOBODY = "0x" + "00" * 20
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GAS = 3_000_000  # each transaction's limit, never estimated: a refused one is mined, and reverts
VERIFICATION_GAS = 100_000  # a deployed account validates in ~15k
DEPLOYMENT_GAS = 250_000  # the factory's proxy: ~82k more
CALL_GAS = 120_000  # a payment to a fresh address, or a token transfer
FORGERIES = [
    "none", "none", "none", "high s", "stranger", "tampered call", "other chain",
    "other entry point", "short", "replay",
]  # fmt: skip
"""How an operation is signed: by the device (the S of its signature high or low), by
a stranger's key, for another call than the one sent, for another chain or
EntryPoint, cut to 63 bytes; or the last that landed, sent again byte for byte (an
honest operation while none has)."""
NOT_THE_CALLER = "account: only the entry point, the account or its owner"


@dataclass(frozen=True)
class Attempt:
    """An operation an account is asked to make, and how it is signed."""

    who: int  # which of the two accounts
    what: str  # pay (wei), pay tokens, name owner
    to: int  # which payee (or, naming an owner: the recoverer or nobody)
    amount: int
    forgery: str
    nonce_shift: int  # from the account's next nonce


ATTEMPTS = st.builds(
    Attempt,
    who=st.integers(0, 1),
    what=st.sampled_from(["pay", "pay", "pay tokens", "name owner"]),
    to=st.integers(0, 1),
    amount=st.one_of(st.integers(0, 5 * 10**16), st.integers(0, 2 * 10**6)),
    forgery=st.sampled_from(FORGERIES),
    nonce_shift=st.sampled_from([0, 0, 0, 1, -1]),
)


@dataclass
class Model:
    signer: SoftwareSigner
    address: str
    balance: int = 0  # wei the account holds
    deposit: int = 0  # wei it holds in the EntryPoint
    tokens: int = 0
    nonce: int = 0
    deployed: bool = False
    owner: str = NOBODY
    last: UserOperation | None = None  # the last operation that landed, to replay


def _fresh() -> str:
    """An address nobody holds a key of, with nothing in it."""
    return Web3.to_checksum_address(os.urandom(20))


def _data(function: ContractFunction) -> bytes:
    return bytes.fromhex(function._encode_transaction_data()[2:])


def _prefund(op: UserOperation) -> int:
    """What the EntryPoint takes before it runs ``op`` (v0.8, no paymaster): every gas
    limit at the maximum fee. It charges the gas used and refunds the rest."""
    return op.max_fee_per_gas * (
        op.verification_gas_limit + op.call_gas_limit + op.pre_verification_gas
    )


def _machine(chain: EmbeddedChain, *, planted: bool = False) -> type[RuleBasedStateMachine]:
    """The machine; ``planted``: it believes a forged operation spends its nonce."""
    deployer = ChainClient(chain.w3, chain.dev_accounts[4])
    funder, bundler, stranger, recoverer = (
        ChainClient(chain.w3, account, gas_limit=GAS) for account in chain.dev_accounts[:4]
    )
    deploy_account_contracts(deployer)
    entry_point = funder.contract(entry_point_artifact(), ENTRY_POINT)
    chain_id = funder.chain_id

    class Accounts(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            token = deployer.deploy("PaymentToken", "trustmesh USD", "TUSD", 6, "1")
            self.token = deployer.contract(load_contract("PaymentToken"), token)
            deployer.transact(self.token.functions.mint(funder.address, 10**12))
            self.accounts: list[Model] = []
            for _ in range(2):
                signer = SoftwareSigner.generate()
                self.accounts.append(Model(signer, account_address(signer.public_key)))
            self.payees = {_fresh(): [0, 0] for _ in range(2)}  # address -> [wei, tokens]
            self.beneficiary = _fresh()
            self.collected = 0  # gas paid to the beneficiary
            self.funded = 0
            self.given = 0  # tokens
            self.held_before = funder.balance(ENTRY_POINT)  # earlier examples' deposits

        def _contract(self, model: Model) -> Any:
            return funder.contract(load_contract("DeviceAccount"), model.address)

        def _deposit(self, model: Model) -> int:
            return int(funder.call(entry_point.functions.balanceOf(model.address)))

        def _call(self, model: Model, what: str, payee: str, amount: int) -> bytes:
            """The account's call data: pay wei, pay tokens, or name an owner."""
            account = self._contract(model)
            if what == "pay":
                return _data(account.functions.execute(payee, amount, b""))
            if what == "pay tokens":
                transfer = _data(self.token.functions.transfer(payee, amount))
                return _data(account.functions.execute(self.token.address, 0, transfer))
            set_owner = _data(account.functions.set_owner(payee))  # the account calls itself
            return _data(account.functions.execute(model.address, 0, set_owner))

        def _op(self, model: Model, call_data: bytes, nonce: int) -> UserOperation:
            """An unsigned operation as a device's wallet makes it, deploying if need be."""
            fee = int(chain.w3.eth.gas_price)
            deploying = not model.deployed
            op = UserOperation(
                sender=model.address, nonce=nonce, call_data=call_data, call_gas_limit=CALL_GAS,
                verification_gas_limit=VERIFICATION_GAS + (DEPLOYMENT_GAS if deploying else 0),
                pre_verification_gas=0, max_fee_per_gas=2 * fee, max_priority_fee_per_gas=fee,
                factory=factory_address() if deploying else None,
                factory_data=create_account_call(model.signer.public_key) if deploying else b"",
            )  # fmt: skip
            return replace(op, pre_verification_gas=LocalBundler.pre_verification_gas(op))

        def _refusal(self, model: Model, op: UserOperation, signed: bool) -> str | None:
            """The EntryPoint's reason to refuse ``op``, in the order it checks, or None."""
            if op.factory is not None and model.deployed:
                return "AA10 sender already constructed"
            if max(0, _prefund(op) - model.deposit) > model.balance:
                return "AA21 didn't pay prefund"
            if op.nonce != model.nonce:
                return "AA25 invalid account nonce"
            if not signed:
                return "AA24 signature error"
            return None

        def _handle(self, model: Model, op: UserOperation, refusal: str | None) -> TxReceipt | None:
            """Send ``op`` in a bundle on-chain; the receipt if it landed."""
            bundle = entry_point.functions.handleOps([op.packed()], self.beneficiary)
            if refusal is None:
                return bundler.transact(bundle)
            # matched by its code: the message is the raw revert data, where "didn't" is escaped
            with pytest.raises(Reverted, match=refusal.split()[0]):
                bundler.transact(bundle)
            if planted and refusal.startswith("AA24"):
                model.nonce += 1
            return None

        @initialize(amounts=st.lists(st.integers(2 * 10**15, 5 * 10**16), min_size=2, max_size=2))
        def open_accounts(self, amounts: list[int]) -> None:
            """Each account funded before it exists (at its address from its key)."""
            for who, amount in enumerate(amounts):
                self.top_up(who, amount, "account")

        @rule(
            who=st.integers(0, 1),
            amount=st.integers(0, 5 * 10**16),
            into=st.sampled_from(["account", "entry point", "tokens"]),
        )
        def top_up(self, who: int, amount: int, into: str) -> None:
            """Wei sent to the account (deployed or not) or deposited for it in the
            EntryPoint, or tokens given to it."""
            model = self.accounts[who]
            if into == "account":
                funder.send_raw(model.address, b"", "funding an account", value=amount)
                model.balance += amount
                self.funded += amount
            elif into == "entry point":
                funder.transact(entry_point.functions.depositTo(model.address), amount)
                model.deposit += amount
                self.funded += amount
            else:
                amount %= 10**6
                funder.transact(self.token.functions.transfer(model.address, amount))
                model.tokens += amount
                self.given += amount

        @rule(attempt=ATTEMPTS)
        def send_operation(self, attempt: Attempt) -> None:
            """An operation, signed (or not) by the device, sent in a bundle."""
            model = self.accounts[attempt.who]
            if attempt.forgery == "replay" and model.last is not None:
                refusal = self._refusal(model, model.last, signed=True)
                assert refusal is not None  # its nonce is spent
                self._handle(model, model.last, refusal)
                return
            payee = list(self.payees)[attempt.to]
            if attempt.what == "name owner":
                payee = [recoverer.address, NOBODY][attempt.to]
            call = self._call(model, attempt.what, payee, attempt.amount)
            op = self._op(model, call, max(0, model.nonce + attempt.nonce_shift))
            forgery = attempt.forgery
            key = SoftwareSigner.generate() if forgery == "stranger" else model.signer
            if forgery == "other chain":
                signature = key.sign(op.hash(ENTRY_POINT, chain_id + 1))
            elif forgery == "other entry point":
                signature = key.sign(op.hash(_fresh(), chain_id))
            else:
                signature = key.sign(op.hash(ENTRY_POINT, chain_id))
            if forgery == "high s":  # what hardware signers give half the time: valid
                s = int.from_bytes(signature[32:], "big")
                signature = signature[:32] + (P256_N - s).to_bytes(32, "big")
            if forgery == "short":
                signature = signature[:63]
            op = op.signed(signature)
            if forgery == "tampered call":  # signed, then pointed at another payee
                other = self._call(model, attempt.what, _fresh(), attempt.amount)
                op = replace(op, call_data=other)
            refusal = self._refusal(model, op, signed=forgery in ("none", "high s", "replay"))
            receipt = self._handle(model, op, refusal)
            if receipt is not None:
                self._landed(model, op, receipt, attempt, payee)

        def _landed(
            self, model: Model, op: UserOperation, receipt: TxReceipt, attempt: Attempt, payee: str
        ) -> None:
            """Account for an operation that landed: the prefund, the call, the gas."""
            operations = entry_point.events.UserOperationEvent()
            (event,) = operations.process_receipt(receipt, errors=DISCARD)
            assert event["args"]["nonce"] == model.nonce
            prefund = _prefund(op)
            cost = int(event["args"]["actualGasCost"])
            assert 0 < cost <= prefund  # never more than the device signed for
            missing = max(0, prefund - model.deposit)
            model.balance -= missing
            model.deposit += missing - cost
            what, amount = attempt.what, attempt.amount
            if what == "pay":  # the call runs after the prefund has left the account
                succeeds = amount <= model.balance
            elif what == "pay tokens":
                succeeds = amount <= model.tokens
            else:
                succeeds = True
            assert event["args"]["success"] == succeeds  # a failed call still pays its gas
            if succeeds and what == "pay":
                model.balance -= amount
                self.payees[payee][0] += amount
            elif succeeds and what == "pay tokens":
                model.tokens -= amount
                self.payees[payee][1] += amount
            elif succeeds:
                model.owner = payee
            model.nonce += 1
            model.deployed = True
            model.last = op
            self.collected += cost

        @precondition(lambda self: any(model.deployed for model in self.accounts))
        @rule(
            who=st.integers(0, 1),
            caller=st.sampled_from(["stranger", "recoverer"]),
            what=st.sampled_from(["execute", "set owner"]),
            to=st.integers(0, 1),
            amount=st.integers(0, 5 * 10**16),
        )
        def call_directly(self, who: int, caller: str, what: str, to: int, amount: int) -> None:
            """An account called by an address, not through the EntryPoint: only the
            owner the device named may."""
            model = self.accounts[who] if self.accounts[who].deployed else self.accounts[1 - who]
            client = stranger if caller == "stranger" else recoverer
            account = client.contract(load_contract("DeviceAccount"), model.address)
            owner = client.address == model.owner
            if what == "set owner":
                new = [NOBODY, stranger.address][to]
                if not owner:
                    with pytest.raises(Reverted, match="account: only the account or its owner"):
                        client.transact(account.functions.set_owner(new))
                    return
                client.transact(account.functions.set_owner(new))
                model.owner = new
                return
            payee = list(self.payees)[to]
            execute = account.functions.execute(payee, amount, b"")
            if not owner:
                with pytest.raises(Reverted, match=NOT_THE_CALLER):
                    client.transact(execute)
                return
            if amount > model.balance:
                with pytest.raises(Reverted):
                    client.transact(execute)
                return
            client.transact(execute)
            model.balance -= amount
            self.payees[payee][0] += amount

        @precondition(lambda self: any(model.deployed for model in self.accounts))
        @rule(who=st.integers(0, 1))
        def validate_directly(self, who: int) -> None:
            """A stranger asks the account to validate an operation and pay it the
            prefund: only the EntryPoint may."""
            model = self.accounts[who] if self.accounts[who].deployed else self.accounts[1 - who]
            op = self._op(model, b"", model.nonce)
            op = op.signed(model.signer.sign(op.hash(ENTRY_POINT, chain_id)))
            account = stranger.contract(load_contract("DeviceAccount"), model.address)
            validate = account.functions.validateUserOp(
                op.packed(), op.hash(ENTRY_POINT, chain_id), max(1, model.balance)
            )
            with pytest.raises(Reverted, match="account: only the entry point"):
                stranger.transact(validate)

        @precondition(lambda self: any(model.deposit for model in self.accounts))
        @rule(who=st.integers(0, 1))
        def withdraw_a_deposit(self, who: int) -> None:
            """A stranger withdraws what an account holds in the EntryPoint."""
            model = self.accounts[who] if self.accounts[who].deposit else self.accounts[1 - who]
            withdraw = entry_point.functions.withdrawTo(stranger.address, model.deposit)
            with pytest.raises(Reverted, match="Withdraw amount too large"):
                stranger.transact(withdraw)

        @invariant()
        def every_wei_and_token_is_where_the_model_says(self) -> None:
            for model in self.accounts:
                account = self._contract(model)
                deployed = bool(chain.w3.eth.get_code(account.address))
                nonce = int(funder.call(entry_point.functions.getNonce(model.address, 0)))
                assert nonce == model.nonce, "nonce"
                assert (funder.balance(model.address), self._deposit(model), deployed) == (
                    model.balance, model.deposit, model.deployed)  # fmt: skip
                assert funder.call(self.token.functions.balanceOf(model.address)) == model.tokens
                if deployed:
                    assert funder.call(account.functions.owner()) == model.owner
            for payee, (wei, tokens) in self.payees.items():
                assert funder.balance(payee) == wei
                assert funder.call(self.token.functions.balanceOf(payee)) == tokens
            assert funder.balance(self.beneficiary) == self.collected
            held = sum(model.balance + model.deposit for model in self.accounts)
            paid = sum(wei for wei, _ in self.payees.values())
            assert held + paid + self.collected == self.funded  # nothing created, nothing lost
            deposits = sum(model.deposit for model in self.accounts)
            assert funder.balance(ENTRY_POINT) == self.held_before + deposits
            tokens = sum(model.tokens for model in self.accounts)
            tokens += sum(received for _, received in self.payees.values())
            assert tokens == self.given

    return Accounts


def test_no_value_leaves_an_account_without_its_devices_signature(chain: EmbeddedChain) -> None:
    run_state_machine_as_test(_machine(chain), settings=invariant_settings(examples=5, steps=25))


def test_the_machine_fails_on_a_planted_wrong_expectation(chain: EmbeddedChain) -> None:
    """The same machine, believing that a forged operation spends its nonce: it
    must find a sequence that shows otherwise (so it can find a real slip)."""
    with pytest.raises(AssertionError, match="nonce"):
        run_state_machine_as_test(
            _machine(chain, planted=True),
            settings=planted_settings(examples=20, steps=10),
        )
