"""The Rewards contract: a pool funded with a distribution's root is claimed
share by share with Merkle proofs, each once, paid to the account in the leaf;
what is left returns to the funder after the expiry. On the embedded chain and
on anvil."""

from __future__ import annotations

import pytest

from tests.chain.conftest import Net
from trustmesh.chain.accounts import (
    account_address,
    deploy_account_contracts,
    factory_address,
    key_coordinates,
)
from trustmesh.chain.compile import load_contract
from trustmesh.chain.rewards import RewardsContract, deploy_rewards
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner
from trustmesh.market.rewards import Distribution, distribute

POOL = 10**15
LIFETIME = 3_600


def _distribution(epoch: int) -> Distribution:
    """Five fresh accounts sharing a pool by weights 1..5 (a remainder left over)."""
    subjects = [bytes([i]) * 32 for i in range(1, 6)]
    accounts = {s: "0x" + SoftwareSigner.generate().public_key.raw[1:21].hex() for s in subjects}
    weights = {s: k + 1 for k, s in enumerate(subjects)}
    return distribute(epoch, POOL - 7, weights, accounts)


def test_shares_are_claimed_once_each_with_their_proofs(net: Net) -> None:
    address = deploy_rewards(net.deployer)
    funder, anyone = RewardsContract(net.owner, address), RewardsContract(net.reporter, address)
    shares = _distribution(epoch=9)
    now = int(net.w3.eth.get_block("latest")["timestamp"])
    pool = funder.fund(9, shares.root, shares.pool, now + LIFETIME)
    last = shares.shares[-1]
    for index, account, amount in (
        (last.index, last.account, last.amount + 1),  # more than its share
        (7, last.account, last.amount),  # another index
        (last.index, net.reporter.address, last.amount),  # paid to someone else
    ):
        with pytest.raises(Reverted, match="not in the distribution"):
            anyone.claim(pool, index, account, amount, shares.proof(last.index))
    for share in shares.shares:  # anyone may send the claim; the account is paid
        anyone.claim(pool, share.index, share.account, share.amount, shares.proof(share.index))
        assert net.w3.eth.get_balance(net.w3.to_checksum_address(share.account)) == share.amount
        assert anyone.is_claimed(pool, share.index)
    first = shares.shares[0]
    with pytest.raises(Reverted, match="already claimed"):
        anyone.claim(pool, first.index, first.account, first.amount, shares.proof(first.index))
    # the rounding's remainder returns to the funder after the expiry, to it alone
    with pytest.raises(Reverted, match="not expired"):
        funder.reclaim(pool)
    net.owner.advance_time(LIFETIME + 1)
    with pytest.raises(Reverted, match="not the funder"):
        anyone.reclaim(pool)
    before = net.owner.balance()
    receipt = funder.reclaim(pool)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.owner.balance() == before - gas + shares.pool - shares.total
    with pytest.raises(Reverted, match="nothing left"):
        funder.reclaim(pool)


def test_a_pool_must_be_paid_for_in_full(net: Net) -> None:
    funder = RewardsContract(net.owner, deploy_rewards(net.deployer))
    shares = _distribution(epoch=1)
    later = int(net.w3.eth.get_block("latest")["timestamp"]) + LIFETIME
    fn = funder.contract.functions.fund(1, shares.root, shares.pool, "0x" + "00" * 20, later)
    with pytest.raises(Reverted, match="value differs"):
        net.owner.transact(fn, shares.pool - 1)
    with pytest.raises(Reverted, match="empty pool"):
        funder.fund(1, shares.root, 0, later)


def test_a_distribution_over_its_pool_takes_only_from_that_pool(net: Net) -> None:
    """Each pool holds its own funds: shares that add up to more than the pool
    are paid until it is empty, and never from another pool."""
    rewards = RewardsContract(net.owner, deploy_rewards(net.deployer))
    later = int(net.w3.eth.get_block("latest")["timestamp"]) + LIFETIME
    greedy = _distribution(epoch=2)  # shares adding up to POOL - 7...
    pool = rewards.fund(2, greedy.root, 1_000, later)  # ...put up with a pool of 1,000
    other = _distribution(epoch=3)
    other_pool = rewards.fund(3, other.root, other.pool, later)
    share = greedy.shares[0]
    with pytest.raises(Reverted):
        rewards.claim(pool, share.index, share.account, share.amount, greedy.proof(share.index))
    assert net.w3.eth.get_balance(net.w3.to_checksum_address(other_pool)) == other.pool
    assert net.w3.eth.get_balance(net.w3.to_checksum_address(pool)) == 1_000


def test_a_share_is_paid_to_a_device_account_whoever_claims_it(net: Net) -> None:
    """A device's account is a proxy: paying it needs more than `send`'s 2,300 gas."""
    deploy_account_contracts(net.deployer)
    device = SoftwareSigner.generate()
    x, y = key_coordinates(device.public_key)
    factory = net.deployer.contract(load_contract("DeviceAccountFactory"), factory_address())
    net.deployer.transact(factory.functions.create_account(x, y))
    account = account_address(device.public_key)
    shares = distribute(4, 10_000, {bytes(32): 1}, {bytes(32): account})
    rewards = RewardsContract(net.owner, deploy_rewards(net.deployer))
    later = int(net.w3.eth.get_block("latest")["timestamp"]) + LIFETIME
    pool = rewards.fund(4, shares.root, shares.pool, later)
    (share,) = shares.shares
    RewardsContract(net.reporter, rewards.address).claim(pool, 0, account, share.amount,
                                                         shares.proof(0))  # fmt: skip
    assert net.w3.eth.get_balance(account) == 10_000
