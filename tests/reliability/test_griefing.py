"""Griefing and access control on the contracts, on the embedded chain: proofs and
entries one past the contracts' bounds, and the gas a bogus proof at the bounds
costs; registration spam; dust channels; every privileged function called by a
stranger; re-entry by a contract paid by a withdrawal, a slash or a channel.

Every transaction here is sent with a fixed gas limit, so a refused one is mined
(and shown to change nothing) rather than caught by an estimate."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import pytest
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from trustmesh.chain.channels import NATIVE, ChannelsContract
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import Artifact, compile_source, source
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import (
    Deployment,
    Disputes,
    Divergence,
    LogAnchor,
    Registry,
    SignedTree,
    device_id,
    onchain_key,
    origin_id,
)
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner, did_from_key, key_from_did
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note_p256 import LogSigner, p256_signature
from trustmesh.market.vouchers import Voucher, sign
from trustmesh.reading import sign_reading

MIN_STAKE = 10**15
UNBONDING = 3600
REWARD_BPS = 4000
GAS = 25_000_000  # under the embedded chain's block gas limit
TS = 1_700_000_000_000

# A contract that, paid, calls back whatever it was aimed at (once): the re-entry
# it tries is whatever the test names; whether it got through is kept in
# `reentered`. Unaimed, taking a payment costs it one storage read (2,100 gas), so
# even `send`'s 2,300 gas pay it; REFUSING, it reverts whenever it is paid.
ATTACKER = """
# pragma version ~=0.4.3
REFUSING: public(immutable(bool))
target: public(address)
payload: public(Bytes[4096])
tried: public(bool)
reentered: public(bool)


@deploy
def __init__(refusing: bool):
    REFUSING = refusing


@external
def aim(target: address, payload: Bytes[4096]):
    self.target = target
    self.payload = payload
    self.tried = False


@external
@payable
def forward(to: address, data: Bytes[16384]):
    raw_call(to, data, value=msg.value)


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[1024]) -> bytes4:
    return 0x1626ba7e  # (it vouches for whatever its payee claims: its own money)


@external
@payable
def __default__():
    assert not REFUSING, "attacker: refused"
    if self.target != empty(address) and not self.tried:
        self.tried = True
        self.reentered = raw_call(self.target, self.payload, revert_on_failure=False)
"""


def _bound(contract: str, name: str) -> int:
    """A constant of a contract's source (so the tests follow its bounds)."""
    found = re.search(rf"^{name}: constant\(uint256\) = (\d+)", source(contract), re.M)
    assert found, f"no {name} in {contract}.vy"
    return int(found.group(1))


def _data(function: ContractFunction) -> bytes:
    return bytes.fromhex(function._encode_transaction_data()[2:])


def _cost(receipt: Any) -> int:
    return int(receipt["gasUsed"] * receipt["effectiveGasPrice"])


@dataclass
class Suite:
    chain: EmbeddedChain
    deployer: ChainClient
    owner: ChainClient
    reporter: ChainClient
    stranger: ChainClient
    payee: ChainClient
    deployment: Deployment
    channels_address: str

    def registry(self, client: ChainClient | None = None) -> Registry:
        return Registry(client or self.owner, self.deployment)

    def anchor(self, client: ChainClient | None = None) -> LogAnchor:
        return LogAnchor(client or self.owner, self.deployment)

    def disputes(self, client: ChainClient | None = None) -> Disputes:
        return Disputes(client or self.reporter, self.deployment)

    def channels(self, client: ChainClient) -> ChannelsContract:
        return ChannelsContract(client, self.channels_address)

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def last_gas(self) -> int:
        """The gas the last transaction used (each is mined in a block of its own)."""
        return int(self.chain.w3.eth.get_block("latest")["gasUsed"])

    def attacker(self, client: ChainClient, *, refusing: bool = False) -> Contract:
        artifact = _attacker()
        return client.contract(artifact, client.deploy_artifact(artifact, refusing))


@functools.cache
def _attacker() -> Artifact:
    return compile_source("Attacker", ATTACKER)


@pytest.fixture(scope="module")
def suite(chain: EmbeddedChain) -> Suite:
    deployer, owner, reporter, stranger, payee = (
        ChainClient(chain.w3, account, advance_time=chain.advance_time, gas_limit=GAS)
        for account in chain.dev_accounts[:5]
    )
    registry = deployer.deploy("Registry", MIN_STAKE, UNBONDING, REWARD_BPS)
    anchor = deployer.deploy("LogAnchor", registry)
    disputes = deployer.deploy("Disputes", registry, anchor, 600)
    contracts = {"Registry": registry, "LogAnchor": anchor, "Disputes": disputes}
    deployment = Deployment(deployer.chain_id, contracts)
    deployer.transact(Registry(deployer, deployment).contract.functions.set_disputes(disputes))
    channels = deployer.deploy("Channels", registry)
    return Suite(chain, deployer, owner, reporter, stranger, payee, deployment, channels)


def _device(suite: Suite) -> tuple[SoftwareSigner, str]:
    signer = SoftwareSigner.generate()
    did = did_from_key(signer.public_key)
    suite.registry().register_device(did, MIN_STAKE)
    return signer, did


def _log(suite: Suite, entries: list[bytes]) -> tuple[str, LogSigner]:
    """A node registered for a new origin, with ``entries`` logged and anchored."""
    origin = f"griefing.example/{os.urandom(4).hex()}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    suite.registry().register_log(signer, "http://127.0.0.1", MIN_STAKE)
    leaves = [merkle.leaf_hash(entry) for entry in entries]
    suite.anchor().anchor(origin, len(leaves), merkle.root(leaves), [])
    return origin, signer


def _signed(origin: str, leaves: list[bytes], signer: LogSigner) -> SignedTree:
    root = merkle.root(leaves)
    r, s = p256_signature(
        sign_checkpoint(Checkpoint(origin, len(leaves), root), signer), signer.p256.verifier
    )
    return SignedTree(len(leaves), root, r + s)


# --- (a) past the bounds, and the gas at them ---------------------------------------


def test_proofs_and_entries_past_the_bounds_are_refused_and_change_nothing(
    suite: Suite,
) -> None:
    max_proof, max_entry = _bound("Disputes", "MAX_PROOF"), _bound("Disputes", "MAX_ENTRY")
    max_consistency = _bound("Disputes", "MAX_CONSISTENCY")
    max_anchor_proof = _bound("LogAnchor", "MAX_PROOF")
    signer, _ = _device(suite)
    entries = [sign_reading(signer, seq=i, ts=TS, sensor="s", value=i) for i in range(5)]
    origin, log_signer = _log(suite, entries)
    leaves = [merkle.leaf_hash(entry) for entry in entries]
    disputes, registry = suite.disputes(), suite.registry()
    functions = disputes.contract.functions
    hashes = [os.urandom(32) for _ in range(max(max_consistency, max_anchor_proof) + 1)]
    oversized = b"\x00" * (max_entry + 1)
    a, b = _signed(origin, leaves[:3], log_signer), _signed(origin, leaves, log_signer)
    attempts: list[Callable[[], Any]] = [
        lambda: disputes.prove_invalid_entry(origin, 5, 0, entries[0], hashes[: max_proof + 1]),
        lambda: disputes.prove_invalid_entry(origin, 5, 0, oversized, []),
        lambda: disputes.prove_equivocation(oversized, entries[0]),
        lambda: disputes.verify_reading(origin, 5, 0, entries[0], hashes[: max_proof + 1]),
        lambda: disputes.prove_inconsistent(origin, a, b, hashes[: max_consistency + 1]),
        lambda: disputes.prove_split_view(
            origin, a, b, Divergence(0, leaves[0], hashes[: max_proof + 1], bytes(32), [])
        ),
        lambda: suite.anchor().anchor(
            origin, 6, merkle.root([*leaves, leaves[0]]), hashes[: max_anchor_proof + 1]
        ),
    ]
    before = (
        registry.node(origin),
        registry.client.balance(registry.address),
        suite.anchor().latest(origin),
    )
    for attempt in attempts:
        with pytest.raises(Reverted) as refused:
            attempt()
        # refused by the ABI decoder, before any check of the contract's own
        assert not str(refused.value).startswith(("disputes:", "anchor:")), refused.value
    assert (
        registry.node(origin),
        registry.client.balance(registry.address),
        suite.anchor().latest(origin),
    ) == before
    assert not suite.reporter.call(functions.split_proven(origin_id(origin)))
    slot = sha256(origin_id(origin) + bytes(32)).digest()
    assert not suite.reporter.call(functions.invalid_proven(slot))


def test_a_bogus_proof_at_the_bounds_costs_bounded_gas(suite: Suite) -> None:
    """Proofs as long as the contracts take, of random hashes: each is refused
    for what it is, at a cost far below a block's gas limit (the proof loops stop
    at the tree's height), so no proof can be made to starve its caller."""
    max_proof, max_entry = _bound("Disputes", "MAX_PROOF"), _bound("Disputes", "MAX_ENTRY")
    max_consistency = _bound("Disputes", "MAX_CONSISTENCY")
    max_anchor_proof = _bound("LogAnchor", "MAX_PROOF")
    block_limit = int(suite.chain.w3.eth.get_block("latest")["gasLimit"])
    leaves = [merkle.leaf_hash(b"entry %d" % i) for i in range(5)]
    origin, log_signer = _log(suite, [b"entry %d" % i for i in range(5)])
    disputes = suite.disputes()
    a, b = _signed(origin, leaves[:3], log_signer), _signed(origin, leaves, log_signer)

    def hashes(count: int) -> list[bytes]:
        return [os.urandom(32) for _ in range(count)]

    attempts: dict[str, Callable[[], Any]] = {
        "disputes: not included": lambda: disputes.prove_invalid_entry(
            origin, 5, 4, os.urandom(max_entry), hashes(max_proof)
        ),
        "disputes: leaf a not included": lambda: disputes.prove_split_view(
            origin, a, b, Divergence(2, leaves[2], hashes(max_proof), b"\x01" * 32, [])
        ),
        "disputes: not a proof in tree b": lambda: disputes.prove_inconsistent(
            origin, a, b, hashes(max_consistency)
        ),
        "anchor: not consistent with the last anchor": lambda: suite.anchor().anchor(
            origin, 2**40, os.urandom(32), hashes(max_anchor_proof)
        ),
    }
    for reason, attempt in attempts.items():
        with pytest.raises(Reverted, match=reason):
            attempt()
        used = suite.last_gas()
        assert used < block_limit // 20, f"{reason}: {used} gas at the bounds"
    assert suite.registry().node(origin)["stake"] == MIN_STAKE


# --- (b) registration spam ------------------------------------------------------------


def test_every_identity_locks_the_minimum_stake(suite: Suite) -> None:
    """Registrations below the minimum are refused, one by one or in a batch; N
    identities from one account lock N times the minimum, and a taken identity
    cannot be registered again."""
    registry = suite.registry(suite.stranger)
    functions = registry.contract.functions
    min_stake, max_batch = registry.min_stake(), _bound("Registry", "MAX_BATCH")
    assert min_stake == MIN_STAKE

    def dids(count: int) -> list[str]:
        return [did_from_key(SoftwareSigner.generate().public_key) for _ in range(count)]

    held = registry.client.balance(registry.address)
    for stake in (0, 1, min_stake - 1):
        with pytest.raises(Reverted, match="registry: stake below minimum"):
            registry.register_device(dids(1)[0], stake)
        with pytest.raises(Reverted, match="registry: stake below minimum"):
            registry.register_log(
                LogSigner.from_seed("spam.example", os.urandom(32)), "http://127.0.0.1", stake
            )
    with pytest.raises(Reverted, match="registry: stake below minimum"):
        registry.register_devices(dids(3), min_stake - 1)  # divisible, each below
    batch = dids(3)
    keys = [key_from_did(did) for did in batch]
    with pytest.raises(Reverted, match="registry: stake not divisible by the batch"):
        suite.stranger.transact(
            functions.register_devices(
                [device_id(d) for d in batch],
                [k.alg.value for k in keys],
                [onchain_key(k) for k in keys],
            ),
            3 * min_stake + 1,
        )
    with pytest.raises(Reverted):  # past the batch bound: refused by the ABI decoder
        registry.register_devices(dids(max_batch + 1), min_stake)
    assert registry.client.balance(registry.address) == held

    spent = suite.stranger.balance()
    singles, fleet = dids(4), dids(max_batch)
    receipts = [registry.register_device(did, min_stake) for did in singles]
    receipts.append(registry.register_devices(fleet, min_stake))
    count = len(singles) + len(fleet)
    assert registry.client.balance(registry.address) == held + count * min_stake
    gas = sum(_cost(receipt) for receipt in receipts)
    assert spent - suite.stranger.balance() == count * min_stake + gas
    for did in [*singles, *fleet]:
        record = registry.device(did)
        assert (record["owner"], record["stake"]) == (suite.stranger.address, min_stake)
    with pytest.raises(Reverted, match="registry: device exists"):
        registry.register_device(singles[0], 10 * min_stake)
    assert registry.device(singles[0])["stake"] == min_stake


# --- (c) dust channels ---------------------------------------------------------------


def test_dust_channels_cost_their_payee_nothing(suite: Suite) -> None:
    """A channel needs a deposit (one wei will do) and a payee other than its payer;
    a stranger's dust channels ask nothing of the payee, nor can anyone but their
    payee close them or anyone but their payer take them back."""
    stranger, reporter = suite.channels(suite.stranger), suite.channels(suite.reporter)
    expiry = suite.now() + 600
    for to, deposit, reason in [
        (suite.payee.address, 0, "Channels: zero deposit"),
        (suite.stranger.address, 1, "Channels: bad payee"),
        (NATIVE, 1, "Channels: bad payee"),
    ]:
        with pytest.raises(Reverted, match=reason):
            stranger.open(to, deposit, expiry)
    held, payee_balance = suite.payee.balance(stranger.address), suite.payee.balance()
    dust = [stranger.open(suite.payee.address, 1, expiry) for _ in range(5)]
    assert suite.payee.balance(stranger.address) == held + len(dust)
    for channel in dust:
        with pytest.raises(Reverted, match="Channels: not the payee"):
            reporter.close(channel, 0)
        with pytest.raises(Reverted, match="Channels: not the payer"):
            reporter.refund(channel)
        with pytest.raises(Reverted, match="Channels: not expired"):
            stranger.refund(channel)
    suite.chain.advance_time(601)
    for channel in dust:
        stranger.refund(channel)
        assert stranger.channel(channel).closed
    assert suite.payee.balance() == payee_balance  # never asked for a transaction
    assert suite.payee.balance(stranger.address) == held


def test_a_payer_refusing_its_refund_cannot_keep_the_payee_from_its_pay(suite: Suite) -> None:
    """A contract payer that reverts when paid makes closing its channel fail, but
    settling pays the payee all the same: nothing is sent to the payer then."""
    attacker = suite.attacker(suite.stranger, refusing=True)
    channels = suite.channels(suite.payee)
    opening = channels.contract.functions.open(
        suite.payee.address, NATIVE, 10_000, suite.now() + 600
    )
    receipt = suite.stranger.transact(
        attacker.functions.forward(channels.address, _data(opening)), 10_000
    )
    channel = channels.opened(receipt)
    with pytest.raises(Reverted, match="attacker: refused"):
        channels.close(channel, 4_000, b"\x01")
    before = suite.payee.balance()
    receipt = channels.settle(channel, 4_000, b"\x01")
    assert suite.payee.balance() == before + 4_000 - _cost(receipt)
    found = channels.channel(channel)
    assert (found.paid, found.closed) == (4_000, False)


# --- (d) access control ---------------------------------------------------------------

# Open by design: anyone registers what it stakes for, and may add to any stake (the
# owner withdraws it); anyone may prove a lie or notarize a signed checkpoint.
OPEN = {
    "Registry": {"register_device", "register_devices", "register_node", "add_stake"},
    "LogAnchor": set(),
    "Disputes": {
        "prove_invalid_entry",
        "prove_equivocation",
        "prove_split_view",
        "prove_inconsistent",
        "notarize",
        "prove_late",
    },
}


def _state_changing(contract: Contract) -> set[str]:
    return {
        item["name"]
        for item in contract.abi
        if item["type"] == "function" and item["stateMutability"] in ("nonpayable", "payable")
    }


def test_every_privileged_function_refuses_a_stranger(suite: Suite) -> None:
    _, did = _device(suite)
    _, due = _device(suite)  # revoked, its unbonding over: its withdrawal is due
    suite.registry().revoke(due)
    suite.chain.advance_time(UNBONDING + 1)
    origin, _ = _log(suite, [b"entry"])
    registry = suite.registry(suite.stranger)
    r = registry.contract.functions
    key = key_from_did(did_from_key(SoftwareSigner.generate().public_key))
    refused: dict[str, dict[str, tuple[ContractFunction, str]]] = {
        "Registry": {
            "set_disputes": (r.set_disputes(suite.stranger.address), "only the deployer"),
            "slash_device": (
                r.slash_device(device_id(did), 1, suite.stranger.address),
                "only disputes",
            ),
            "slash_node": (
                r.slash_node(origin_id(origin), 1, suite.stranger.address),
                "only disputes",
            ),
            "rotate_key": (
                r.rotate_key(device_id(did), key.alg.value, onchain_key(key), 9),
                "only the owner",
            ),
            "set_price": (r.set_price(device_id(did), 1, 0, NATIVE), "only the owner"),
            "revoke": (r.revoke(device_id(did)), "only the owner"),
            "set_mesh_addrs": (
                r.set_mesh_addrs(origin_id(origin), "/ip4/1.2.3.4"),
                "only the owner",
            ),
            "retire_node": (r.retire_node(origin_id(origin)), "only the owner"),
            "withdraw": (r.withdraw(device_id(due)), "only the owner"),
        },
        "LogAnchor": {
            "anchor": (
                suite.anchor(suite.stranger).contract.functions.anchor(
                    origin, 2, os.urandom(32), [os.urandom(32)]
                ),
                "not the origin's node",
            ),
        },
    }
    contracts = {
        "Registry": registry.contract,
        "LogAnchor": suite.anchor().contract,
        "Disputes": suite.disputes().contract,
    }
    for name, contract in contracts.items():
        assert _state_changing(contract) == set(refused.get(name, {})) | OPEN[name], name
    owner = suite.registry()

    def state() -> tuple[Any, ...]:
        return (
            owner.device(did),
            owner.device(due),
            owner.node(origin),
            owner.client.balance(owner.address),
            owner.client.call(r.disputes()),
        )

    before = state()
    for calls in refused.values():
        for function, reason in calls.values():
            with pytest.raises(Reverted, match=reason):
                suite.stranger.transact(function)
    with pytest.raises(Reverted, match="registry: disputes already set"):
        suite.deployer.transact(owner.contract.functions.set_disputes(suite.deployer.address))
    assert state() == before
    # and a stranger's gift of stake is the owner's
    node_owner = suite.registry().node(origin)["owner"]
    suite.stranger.transact(r.add_stake(origin_id(origin)), 123)
    assert suite.registry().node(origin)["stake"] == MIN_STAKE + 123
    assert node_owner == suite.owner.address


def test_channel_functions_refuse_a_stranger(suite: Suite) -> None:
    payer, stranger = suite.channels(suite.owner), suite.channels(suite.stranger)
    channel = payer.open(suite.payee.address, 1_000, suite.now() + 600)
    voucher = sign(Voucher(payer.domain(), channel, 500), suite.owner.account)
    functions = stranger.contract.functions
    refused = {
        "top_up": (functions.top_up(channel, 0, suite.now() + 700), "Channels: not the payer"),
        "settle": (functions.settle(channel, 500, voucher), "Channels: not the payee"),
        "close": (functions.close(channel, 500, voucher), "Channels: not the payee"),
        "refund": (functions.refund(channel), "Channels: not the payer"),
        "withdraw": (functions.withdraw(NATIVE), "Channels: nothing owed"),
    }
    assert _state_changing(stranger.contract) == set(refused) | {"open", "open_for"}
    suite.chain.advance_time(601)  # (the refund refused is due to its payer)
    held = suite.stranger.balance(payer.address)
    for function, reason in refused.values():
        with pytest.raises(Reverted, match=reason):
            suite.stranger.transact(function)
    found = payer.channel(channel)
    assert (found.deposit, found.paid, found.closed) == (1_000, 0, False)
    assert suite.stranger.balance(payer.address) == held


# --- (e) re-entry ---------------------------------------------------------------------


def test_a_withdrawal_cannot_be_reentered(suite: Suite) -> None:
    """The Registry pays a withdrawal with all the gas left, under a lock, once the
    stake is marked paid: an owner calling back for a second withdrawal while paid
    gets nothing more, and is paid its stake once."""
    attacker = suite.attacker(suite.stranger)
    registry = suite.registry(suite.stranger)
    functions = registry.contract.functions
    did = did_from_key(SoftwareSigner.generate().public_key)
    key = key_from_did(did)
    registering = functions.register_device(device_id(did), key.alg.value, onchain_key(key))

    def as_attacker(function: ContractFunction, value: int = 0) -> Any:
        return suite.stranger.transact(
            attacker.functions.forward(registry.address, _data(function)), value
        )

    as_attacker(registering, MIN_STAKE)
    as_attacker(functions.revoke(device_id(did)))
    suite.chain.advance_time(UNBONDING + 1)
    withdrawing = functions.withdraw(device_id(did))
    suite.stranger.transact(attacker.functions.aim(registry.address, _data(withdrawing)))
    held = suite.stranger.balance(registry.address)
    as_attacker(withdrawing)
    assert suite.stranger.call(attacker.functions.tried())
    assert not suite.stranger.call(attacker.functions.reentered())
    assert suite.stranger.balance(attacker.address) == MIN_STAKE
    assert suite.stranger.balance(registry.address) == held - MIN_STAKE
    assert registry.device(did)["stake"] == 0
    with pytest.raises(Reverted, match="registry: nothing to withdraw"):
        as_attacker(withdrawing)


def test_a_slash_reward_cannot_be_reentered(suite: Suite) -> None:
    """A reporter contract that calls back when rewarded: its proof fails whole
    (the stake stays for an honest reporter, who is paid its share once)."""
    attacker = suite.attacker(suite.stranger)
    signer, did = _device(suite)
    first, second = (sign_reading(signer, seq=1, ts=TS, sensor="s", value=v) for v in (1, 2))
    disputes = suite.disputes()
    proving = disputes.contract.functions.prove_equivocation(first, second)
    suite.stranger.transact(attacker.functions.aim(disputes.address, _data(proving)))
    registry = suite.registry()
    held = registry.client.balance(registry.address)
    with pytest.raises(Reverted):
        suite.stranger.transact(attacker.functions.forward(disputes.address, _data(proving)))
    assert registry.device(did)["stake"] == MIN_STAKE
    assert registry.client.balance(registry.address) == held
    before = suite.reporter.balance()
    receipt = disputes.prove_equivocation(first, second)
    reward = MIN_STAKE * REWARD_BPS // 10_000
    assert suite.reporter.balance() == before + reward - _cost(receipt)
    assert registry.client.balance(registry.address) == held - reward
    assert registry.device(did)["stake"] == 0


def test_channel_payouts_cannot_be_reentered(suite: Suite) -> None:
    """Channels pays with all the gas left, under a lock on every function: a payee
    calling back for a second settlement while paid, or a payer calling back for a
    second refund, gets nothing more, and the contract keeps what the rest is owed."""
    payee = suite.attacker(suite.payee)
    payer = suite.channels(suite.owner)
    held = suite.owner.balance(payer.address)
    channel = payer.open(payee.address, 1_000, suite.now() + 600)
    vouchers = {
        amount: sign(Voucher(payer.domain(), channel, amount), suite.owner.account)
        for amount in (300, 700)
    }
    functions = payer.contract.functions
    second = functions.settle(channel, 700, vouchers[700])
    suite.payee.transact(payee.functions.aim(payer.address, _data(second)))
    first = functions.settle(channel, 300, vouchers[300])
    suite.payee.transact(payee.functions.forward(payer.address, _data(first)))
    assert suite.payee.call(payee.functions.tried())
    assert not suite.payee.call(payee.functions.reentered())
    assert suite.payee.balance(payee.address) == 300
    assert payer.channel(channel).paid == 300
    suite.payee.transact(payee.functions.forward(payer.address, _data(second)))  # on its own
    assert suite.payee.balance(payee.address) == 700
    assert suite.owner.balance(payer.address) == held + 300

    refunded = suite.attacker(suite.stranger)
    opening = functions.open(suite.payee.address, NATIVE, 500, suite.now() + 600)
    receipt = suite.stranger.transact(
        refunded.functions.forward(payer.address, _data(opening)), 500
    )
    theirs = payer.opened(receipt)
    refund = functions.refund(theirs)
    suite.stranger.transact(refunded.functions.aim(payer.address, _data(refund)))
    suite.chain.advance_time(601)
    suite.stranger.transact(refunded.functions.forward(payer.address, _data(refund)))
    assert suite.stranger.call(refunded.functions.tried())
    assert not suite.stranger.call(refunded.functions.reentered())
    assert suite.stranger.balance(refunded.address) == 500
    assert payer.channel(theirs).closed
    assert suite.owner.balance(payer.address) == held + 300  # the first channel's rest
