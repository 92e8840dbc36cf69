"""Shared ownership with a Safe (1.4.1, from npm @safe-global/safe-contracts):
a Safe owns a device and changes its price only with its threshold of owner
signatures, one of its owners a device account signing with its P-256 key; a
Safe pays over a channel, its vouchers checked through EIP-1271. On the embedded
chain and on anvil."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.chain.conftest import MIN_STAKE, Net
from tests.chain.safes import ZERO, deploy_safe
from trustmesh.chain.channels import ChannelsContract, deploy_channels
from trustmesh.chain.safe import (
    OwnerSignature,
    contract_signature,
    owner_signature,
    pack_signatures,
    safe_message_hash,
    safe_tx_preimage,
)
from trustmesh.chain.suite import device_id, onchain_key
from trustmesh.errors import InvalidVoucher, Reverted
from trustmesh.identity import SoftwareSigner, did_from_key, key_from_did
from trustmesh.market.vouchers import SafeSigners, Voucher, check_safe


def test_a_safe_owned_device_changes_its_price_only_with_enough_signatures(net: Net) -> None:
    owned = deploy_safe(net.deployer)
    safe, (alice, bob) = owned.safe, owned.eoas
    net.deployer.send_raw(safe.address, b"", "funding the Safe", value=2 * MIN_STAKE)
    registry = net.registry(net.deployer)
    did = did_from_key(SoftwareSigner.generate().public_key)
    key = key_from_did(did)
    register = registry.contract.functions.register_device(
        device_id(did), key.alg.value, onchain_key(key)
    )._encode_transaction_data()
    data = bytes.fromhex(register[2:])
    digest = safe.tx_hash(registry.address, MIN_STAKE, data)
    safe.execute(registry.address, MIN_STAKE, data,
                 [owner_signature(alice, digest), owner_signature(bob, digest)])  # fmt: skip
    assert registry.device(did)["owner"] == safe.address

    def set_price(price: int, signers: list[OwnerSignature | LocalAccount]) -> None:
        call = registry.contract.functions.set_price(device_id(did), price, 1_000, ZERO)
        data = bytes.fromhex(call._encode_transaction_data()[2:])
        digest = safe.tx_hash(registry.address, 0, data)
        signatures = [s if isinstance(s, OwnerSignature) else owner_signature(s, digest)
                      for s in signers]  # fmt: skip
        safe.execute(registry.address, 0, data, signatures)

    with pytest.raises(Reverted, match="GS020"):  # one signature of the two needed
        set_price(77, [alice])
    with pytest.raises(Reverted, match="registry: only the owner"):  # nor the owners alone
        net.registry(net.owner).set_price(did, 77)
    assert registry.device(did)["price"] == 0
    # the device account co-signs with its P-256 key: the Safe asks it through EIP-1271
    call = registry.contract.functions.set_price(device_id(did), 77, 1_000, ZERO)
    data = bytes.fromhex(call._encode_transaction_data()[2:])
    preimage = safe_tx_preimage(net.w3.eth.chain_id, safe.address, registry.address, 0, data,
                                safe.nonce())  # fmt: skip
    by_device = contract_signature(owned.account, owned.device.sign(keccak(preimage)))
    wrong = contract_signature(owned.account, SoftwareSigner.generate().sign(keccak(preimage)))
    with pytest.raises(Reverted):
        set_price(77, [alice, wrong])
    set_price(77, [alice, by_device])
    assert registry.device(did)["price"] == 77


def test_a_safe_pays_over_a_channel_with_its_owners_signatures(net: Net) -> None:
    owned = deploy_safe(net.deployer)
    safe, (alice, bob) = owned.safe, owned.eoas
    net.deployer.send_raw(safe.address, b"", "funding the Safe", value=10**16)
    channels = ChannelsContract(net.reporter, deploy_channels(net.deployer))
    expiry = int(net.w3.eth.get_block("latest")["timestamp"]) + 3_600
    opening = channels.contract.functions.open(net.reporter.address, ZERO, 10**15, expiry)
    data = bytes.fromhex(opening._encode_transaction_data()[2:])
    digest = safe.tx_hash(channels.address, 10**15, data)
    safe.execute(channels.address, 10**15, data,
                 [owner_signature(alice, digest), owner_signature(bob, digest)])  # fmt: skip
    channel = int(channels.client.call(channels.contract.functions.count()))
    assert channels.channel(channel).payer == safe.address
    voucher = Voucher(channels.domain(), channel, 4_000)
    message = safe_message_hash(net.w3.eth.chain_id, safe.address, voucher.digest())
    short = pack_signatures([owner_signature(alice, message)])
    with pytest.raises(Reverted, match="bad voucher signature"):  # (the Safe reverts: GS020)
        channels.settle(channel, 4_000, short)
    full = pack_signatures([owner_signature(alice, message), owner_signature(bob, message)])
    # the node's off-chain check agrees with the Safe's own
    owners = SafeSigners(safe.address, frozenset([alice.address, bob.address, owned.account]), 2)
    check_safe(voucher, full, owners)
    with pytest.raises(InvalidVoucher):
        check_safe(voucher, short, owners)
    before = net.reporter.balance()
    receipt = channels.settle(channel, 4_000, full)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.reporter.balance() == before - gas + 4_000
