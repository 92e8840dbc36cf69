"""The Registry contract, on the embedded chain and on anvil: every path, every
revert reason, and stake accounting."""

from __future__ import annotations

import os
import random

import pytest
from web3.contract.contract import ContractFunction

from tests.chain.conftest import MIN_STAKE, REWARD_BPS, UNBONDING, Net, new_did
from trustmesh.chain.compile import compile_source
from trustmesh.chain.suite import device_id, onchain_key, origin_id, proof_key_message
from trustmesh.errors import Reverted
from trustmesh.identity import Alg, SoftwareSigner, key_from_did
from trustmesh.log.note_p256 import LogSigner


def test_register_device_records_key_stake_and_event(net: Net) -> None:
    registry = net.registry()
    did = new_did()
    receipt = registry.register_device(did, MIN_STAKE)
    record = registry.device(did)
    assert record["owner"] == net.owner.address
    assert (record["stake"], record["status"], record["keys"]) == (MIN_STAKE, "active", 1)
    alg, key, from_seq, _ = registry.key_at(did, 12345)
    assert (alg, key, from_seq) == (-7, onchain_key(key_from_did(did)), 0)
    (event,) = registry.contract.events.DeviceRegistered().process_receipt(receipt)
    assert bytes(event["args"]["device_id"]) == device_id(did)
    assert event["args"]["stake"] == MIN_STAKE


def test_register_ed25519_device(net: Net) -> None:
    registry = net.registry()
    did = new_did(Alg.EDDSA)
    registry.register_device(did, MIN_STAKE)
    alg, key, _, _ = registry.key_at(did, 0)
    assert (alg, key) == (-8, key_from_did(did).raw)


@pytest.mark.parametrize(
    ("alg", "key", "reason"),
    [
        (-7, bytes(33), "registry: P-256 key must be x || y"),
        (-8, bytes(64), "registry: Ed25519 key must be 32 bytes"),
        (-35, bytes(64), "registry: unknown alg"),
    ],
)
def test_register_device_refuses_bad_keys(net: Net, alg: int, key: bytes, reason: str) -> None:
    registry = net.registry()
    fn = registry.contract.functions.register_device(device_id("did:key:zX"), alg, key)
    with pytest.raises(Reverted, match=reason):
        net.owner.transact(fn, MIN_STAKE)


def test_register_device_refuses_duplicates_and_low_stake(net: Net) -> None:
    registry = net.registry()
    did = new_did()
    with pytest.raises(Reverted, match="registry: stake below minimum"):
        registry.register_device(did, MIN_STAKE - 1)
    registry.register_device(did, MIN_STAKE)
    with pytest.raises(Reverted, match="registry: device exists"):
        registry.register_device(did, MIN_STAKE)


def test_batch_registration(net: Net) -> None:
    registry = net.registry()
    dids = [new_did(Alg.ES256 if i % 2 else Alg.EDDSA) for i in range(5)]
    receipt = registry.register_devices(dids, MIN_STAKE)
    assert len(registry.contract.events.DeviceRegistered().process_receipt(receipt)) == 5
    assert all(registry.device(did)["stake"] == MIN_STAKE for did in dids)
    fn = registry.contract.functions.register_devices
    one = [device_id(new_did())]
    with pytest.raises(Reverted, match="registry: empty batch"):
        net.owner.transact(fn([], [], []))
    with pytest.raises(Reverted, match="registry: batch lengths differ"):
        net.owner.transact(fn(one, [], [bytes(64)]), MIN_STAKE)
    with pytest.raises(Reverted, match="registry: stake not divisible by the batch"):
        net.owner.transact(fn(one * 2, [-7, -7], [bytes(64)] * 2), 3)
    with pytest.raises(Reverted, match="registry: device exists"):
        registry.register_devices([dids[0]], MIN_STAKE)


def test_key_rotation_keeps_history(net: Net) -> None:
    registry = net.registry()
    did = new_did()
    registry.register_device(did, MIN_STAKE)
    second, third = (
        SoftwareSigner.generate().public_key,
        SoftwareSigner.generate(Alg.EDDSA).public_key,
    )
    registry.rotate_key(did, second, 100)
    registry.rotate_key(did, third, 200)
    assert registry.device(did)["keys"] == 3
    assert registry.key_at(did, 99)[1] == onchain_key(key_from_did(did))
    assert registry.key_at(did, 100)[1] == onchain_key(second)
    assert registry.key_at(did, 150)[1] == onchain_key(second)
    assert registry.key_at(did, 200)[:3] == (-8, third.raw, 200)
    with pytest.raises(Reverted, match="registry: from_seq must grow"):
        registry.rotate_key(did, second, 200)
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).rotate_key(did, second, 300)
    with pytest.raises(Reverted, match="registry: unknown device"):
        registry.key_at(new_did(), 0)


def test_revoke_unbond_withdraw(net: Net) -> None:
    registry = net.registry()
    did = new_did()
    registry.register_device(did, MIN_STAKE)
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).revoke(did)
    with pytest.raises(Reverted, match="registry: nothing to withdraw"):
        registry.withdraw(device_id(did))
    registry.revoke(did)
    assert registry.device(did)["status"] == "revoked"
    with pytest.raises(Reverted, match="registry: device exists"):  # (not back under the same id)
        registry.register_device(did, MIN_STAKE)
    with pytest.raises(Reverted, match="registry: device not active"):
        registry.revoke(did)
    with pytest.raises(Reverted, match="registry: device not active"):
        registry.rotate_key(did, SoftwareSigner.generate().public_key, 5)
    with pytest.raises(Reverted, match="registry: still unbonding"):
        registry.withdraw(device_id(did))
    net.owner.advance_time(UNBONDING + 1)
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).withdraw(device_id(did))
    before = net.owner.balance()
    receipt = registry.withdraw(device_id(did))
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.owner.balance() == before + MIN_STAKE - gas
    assert registry.device(did)["status"] == "withdrawn"
    assert registry.device(did)["stake"] == 0
    with pytest.raises(Reverted, match="registry: device exists"):  # a withdrawn id stays spent
        net.registry(net.reporter).register_device(did, MIN_STAKE)
    with pytest.raises(Reverted, match="registry: nothing to withdraw"):
        registry.withdraw(device_id(did))


def test_nodes(net: Net) -> None:
    registry = net.registry()
    origin = f"log.example/{random.getrandbits(32)}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    key, proof_key = signer.verifier.public_key, signer.p256.verifier.public_key

    def signed(name: str, owner: str = net.owner.address, chain_id: int = 0) -> bytes:
        message = proof_key_message(name, owner, chain_id or net.owner.chain_id)
        return signer.p256.sign_raw(message)

    receipt = registry.register_log(signer, "http://127.0.0.1:8080", MIN_STAKE)
    (event,) = registry.contract.events.NodeRegistered().process_receipt(receipt)
    assert event["args"]["origin"] == origin
    node = registry.node(origin)
    assert (node["status"], node["checkpoint_key"], node["url"], node["proof_key"]) == (
        "active",
        key.hex(),
        "http://127.0.0.1:8080",
        proof_key.hex(),
    )
    proof_key_of = registry.contract.functions.node_proof_key(origin_id(origin))
    assert bytes(net.owner.call(proof_key_of)) == proof_key
    operator = registry.contract.functions.node_operator(origin_id(origin))
    assert net.owner.call(operator) == net.owner.address
    with pytest.raises(Reverted, match="registry: origin taken"):
        registry.register_node(origin, key, "", MIN_STAKE, proof_key, signed(origin))
    with pytest.raises(Reverted, match="registry: empty origin"):
        registry.register_node("", key, "", MIN_STAKE, proof_key, signed(""))
    with pytest.raises(Reverted, match="registry: empty checkpoint key"):
        registry.register_node(origin + "x", bytes(32), "", MIN_STAKE, proof_key, signed(origin))
    with pytest.raises(Reverted, match="registry: stake below minimum"):
        registry.register_node(origin + "y", key, "", 1, proof_key, signed(origin + "y"))
    with pytest.raises(Reverted, match="registry: proof key must be P-256"):
        registry.register_node(origin + "z", key, "", MIN_STAKE, proof_key[:33], b"")
    # A key the sender does not hold (someone else's, or any 64 bytes) is refused,
    # and so is a signature for another origin, sender or chain.
    for wrong in (
        signed(origin + "w", chain_id=1),
        signed(origin + "w", owner=net.reporter.address),
        signed(origin),
        bytes(64),
    ):
        with pytest.raises(Reverted, match="registry: proof key not proven"):
            registry.register_node(origin + "w", key, "", MIN_STAKE, proof_key, wrong)
    stranger = LogSigner.from_seed(origin + "w", os.urandom(32)).p256.verifier.public_key
    with pytest.raises(Reverted, match="registry: proof key not proven"):
        registry.register_node(origin + "w", key, "", MIN_STAKE, stranger, signed(origin + "w"))
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).retire_node(origin)
    registry.retire_node(origin)
    assert net.owner.call(operator) == "0x" + "00" * 20
    with pytest.raises(Reverted, match="registry: node not active"):
        registry.retire_node(origin)
    net.owner.advance_time(UNBONDING + 1)
    registry.withdraw(origin_id(origin))
    assert registry.node(origin)["status"] == "withdrawn"


def test_a_node_publishes_where_it_joins_the_mesh(net: Net) -> None:
    """Only a node's owner publishes its multiaddrs, only while it is active; the
    Registry then lists them for anyone joining the mesh (a retired node's go)."""
    registry = net.registry()
    origin = f"log.example/{random.getrandbits(32)}"
    registry.register_log(LogSigner.from_seed(origin, os.urandom(32)), "", MIN_STAKE)
    assert registry.mesh_addrs(origin) == []
    addrs = [f"/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWExample" for port in (4001, 4002)]
    receipt = registry.set_mesh_addrs(origin, addrs)
    (event,) = registry.contract.events.NodeMeshAddrs().process_receipt(receipt)
    assert event["args"]["origin_id"] == origin_id(origin)
    assert registry.mesh_addrs(origin) == addrs
    assert registry.mesh_bootstrap()[origin] == addrs
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).set_mesh_addrs(origin, ["/ip4/10.0.0.1/tcp/1/p2p/x"])
    with pytest.raises(Reverted, match="registry: node not active"):
        registry.set_mesh_addrs(origin + "?", addrs)  # no such node
    with pytest.raises(ValueError, match="without spaces"):
        registry.set_mesh_addrs(origin, ["/ip4/1.2.3.4 /tcp/1"])
    with pytest.raises(ValueError, match="1024 characters"):
        registry.set_mesh_addrs(origin, ["/ip4/1.2.3.4/tcp/1/" + "x" * 1024])
    assert registry.mesh_addrs(origin) == addrs  # (nothing changed)
    registry.retire_node(origin)
    assert origin not in registry.mesh_bootstrap()
    with pytest.raises(Reverted, match="registry: node not active"):
        registry.set_mesh_addrs(origin, addrs)


def test_price_and_added_stake(net: Net) -> None:
    registry = net.registry()
    did = new_did()
    registry.register_device(did, MIN_STAKE)
    registry.set_price(did, 123, node_bps=2_500)
    assert (registry.device(did)["price"], registry.device(did)["node_bps"]) == (123, 2_500)
    terms = registry.contract.functions.terms(device_id(did)).call()
    assert terms == [net.owner.address, 123, 2_500, "0x" + "00" * 20]
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).set_price(did, 1)
    with pytest.raises(Reverted, match="registry: node share above 100%"):
        registry.set_price(did, 1, node_bps=10_001)
    assert registry.device(did)["price"] == 123
    net.owner.transact(registry.contract.functions.add_stake(device_id(did)), 5)
    assert registry.device(did)["stake"] == MIN_STAKE + 5
    with pytest.raises(Reverted, match="registry: not active"):
        net.owner.transact(registry.contract.functions.add_stake(device_id(new_did())), 5)


def test_slashing_hooks_only_for_disputes(net: Net) -> None:
    registry = net.registry()
    did = new_did()
    registry.register_device(did, MIN_STAKE)
    slash = registry.contract.functions.slash_device(
        device_id(did), MIN_STAKE // 2, net.reporter.address
    )
    with pytest.raises(Reverted, match="registry: only disputes"):
        net.owner.transact(slash)
    set_disputes = registry.contract.functions.set_disputes
    with pytest.raises(Reverted, match="registry: only the deployer"):
        net.owner.transact(set_disputes(net.deployer.address))
    with pytest.raises(Reverted, match="registry: zero address"):
        net.deployer.transact(set_disputes("0x" + "00" * 20))
    # The deployer's account stands in for the Disputes contract here.
    net.deployer.transact(set_disputes(net.deployer.address))
    with pytest.raises(Reverted, match="registry: disputes already set"):
        net.deployer.transact(set_disputes(net.owner.address))
    before = net.reporter.balance()
    receipt = net.deployer.transact(slash)
    (event,) = registry.contract.events.Slashed().process_receipt(receipt)
    reward = (MIN_STAKE // 2) * REWARD_BPS // 10_000
    assert (event["args"]["amount"], event["args"]["reward"]) == (MIN_STAKE // 2, reward)
    assert net.reporter.balance() == before + reward
    assert registry.device(did)["stake"] == MIN_STAKE - MIN_STAKE // 2
    # Asking for more than is left takes what is left.
    more = registry.contract.functions.slash_device(
        device_id(did), MIN_STAKE * 9, net.reporter.address
    )
    net.deployer.transact(more)
    assert registry.device(did)["stake"] == 0
    with pytest.raises(Reverted, match="registry: nothing to slash"):
        net.deployer.transact(more)


def test_stake_is_fully_accounted_for(net: Net) -> None:
    """Invariant: the contract's balance is the sum of live stakes plus what was
    slashed and not paid out, through a random mix of every operation."""
    registry = net.registry()
    net.deployer.transact(registry.contract.functions.set_disputes(net.deployer.address))
    rng = random.Random(7)
    dids: list[str] = []
    withdrawn: set[str] = set()
    for _ in range(14):
        action = rng.choice(["register", "register", "slash", "revoke", "add"])
        live = [d for d in dids if d not in withdrawn]
        if action == "register" or not live:
            did = new_did()
            registry.register_device(did, MIN_STAKE + rng.randrange(1000))
            dids.append(did)
        elif action == "slash":
            did = rng.choice(live)
            if registry.device(did)["stake"]:
                fn = registry.contract.functions.slash_device
                net.deployer.transact(
                    fn(device_id(did), rng.randrange(1, MIN_STAKE), net.reporter.address)
                )
        elif action == "revoke":
            did = rng.choice(live)
            if registry.device(did)["status"] == "active":
                registry.revoke(did)
        else:
            did = rng.choice(live)
            if registry.device(did)["status"] == "active":
                net.owner.transact(registry.contract.functions.add_stake(device_id(did)), 77)
    net.owner.advance_time(UNBONDING + 1)
    for did in dids:
        if registry.device(did)["status"] == "revoked":
            registry.withdraw(device_id(did))
    stakes = sum(registry.device(did)["stake"] for did in dids)
    slashed = net.owner.call(registry.contract.functions.slashed_total())
    assert net.owner.balance(registry.address) == stakes + slashed


def test_constructor_refuses_a_reward_above_everything(net: Net) -> None:
    with pytest.raises(Reverted, match="registry: reward above 100%"):
        net.deployer.deploy("Registry", MIN_STAKE, UNBONDING, 10_001)


def test_node_slashing_and_withdrawal_paths(net: Net) -> None:
    registry = net.registry()
    origin = f"slash.example/{random.getrandbits(32)}"
    registry.register_log(
        LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1", MIN_STAKE
    )
    net.owner.transact(registry.contract.functions.add_stake(origin_id(origin)), 10)
    assert registry.node(origin)["stake"] == MIN_STAKE + 10
    slash = registry.contract.functions.slash_node(
        origin_id(origin), MIN_STAKE, net.reporter.address
    )
    with pytest.raises(Reverted, match="registry: only disputes"):
        net.owner.transact(slash)
    net.deployer.transact(registry.contract.functions.set_disputes(net.deployer.address))
    before = net.reporter.balance()
    net.deployer.transact(slash)
    assert registry.node(origin)["stake"] == 10
    assert net.reporter.balance() == before + MIN_STAKE * REWARD_BPS // 10_000
    registry.retire_node(origin)
    with pytest.raises(Reverted, match="registry: still unbonding"):
        registry.withdraw(origin_id(origin))
    net.owner.advance_time(UNBONDING + 1)
    with pytest.raises(Reverted, match="registry: only the owner"):
        net.registry(net.reporter).withdraw(origin_id(origin))
    registry.withdraw(origin_id(origin))
    with pytest.raises(Reverted, match="registry: nothing to slash"):
        net.deployer.transact(slash)
    slashed = net.owner.call(registry.contract.functions.slashed_total())
    assert slashed == MIN_STAKE - MIN_STAKE * REWARD_BPS // 10_000
    assert net.owner.balance(registry.address) == slashed


# An owner that is a wallet contract: it makes calls with its own funds, and books
# each payment it takes, a storage write: more than `send`'s 2,300 gas (as a
# multisig wallet behind a proxy needs more).
BOOKING_WALLET = """
# pragma version ~=0.4.3
received: public(uint256)

@external
def execute(to: address, amount: uint256, data: Bytes[4096]):
    raw_call(to, data, value=amount)

@external
@payable
def __default__():
    self.received += msg.value
"""


def test_an_owner_contract_that_needs_more_than_a_stipend_withdraws_its_stake(net: Net) -> None:
    """A node registered, retired and withdrawn by a wallet contract that writes
    storage when paid gets its stake back. (Paid with `send`'s 2,300 gas, the
    withdrawal reverted, for good: the stake stayed in the Registry.)"""
    artifact = compile_source("BookingWallet", BOOKING_WALLET)
    wallet = net.owner.contract(artifact, net.owner.deploy_artifact(artifact))
    net.owner.send_raw(wallet.address, b"", "funding the wallet", MIN_STAKE)
    registry = net.registry()
    functions = registry.contract.functions

    def as_wallet(function: ContractFunction, amount: int = 0) -> None:
        data = bytes.fromhex(function._encode_transaction_data()[2:])
        net.owner.transact(wallet.functions.execute(registry.address, amount, data))

    origin = f"log.example/{random.getrandbits(32)}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    message = proof_key_message(origin, wallet.address, net.owner.chain_id)
    as_wallet(functions.register_node(origin, signer.verifier.public_key, "",
                                      signer.p256.verifier.public_key,
                                      signer.p256.sign_raw(message)), MIN_STAKE)  # fmt: skip
    assert registry.node(origin)["owner"] == wallet.address
    as_wallet(functions.retire_node(origin_id(origin)))
    net.owner.advance_time(UNBONDING + 1)
    held = net.owner.balance(registry.address)
    as_wallet(functions.withdraw(origin_id(origin)))
    assert registry.node(origin)["status"] == "withdrawn"
    assert net.owner.call(wallet.functions.received()) == 2 * MIN_STAKE  # (funded, then paid)
    assert net.owner.balance(wallet.address) == MIN_STAKE
    assert net.owner.balance(registry.address) == held - MIN_STAKE
