"""The Channels contract: a payer opens a channel, pays the payee by vouchers that
cost no transaction, the payee settles and closes, the payer takes back the rest
after the expiry; every bad voucher is refused with its reason and moves nothing.
On the embedded chain and on anvil."""

from __future__ import annotations

import pytest
from eth_account import Account
from vyper.compiler import compile_code

from tests.chain.conftest import MIN_STAKE, Net, new_did
from trustmesh.chain.channels import NATIVE, ChannelsContract, deploy_channels
from trustmesh.chain.compile import Artifact
from trustmesh.chain.suite import device_id
from trustmesh.errors import InvalidVoucher, Reverted
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.market.vouchers import Domain, Voucher, sign, signer

DEPOSIT = 10**15
LIFETIME = 3600


def _now(net: Net) -> int:
    return int(net.w3.eth.get_block("latest")["timestamp"])


@pytest.fixture
def channels(net: Net) -> tuple[ChannelsContract, ChannelsContract, int]:
    """The contract through the payer (owner) and the payee (reporter), and an open
    channel between them."""
    address = deploy_channels(net.deployer)
    payer, payee = ChannelsContract(net.owner, address), ChannelsContract(net.reporter, address)
    channel = payer.open(net.reporter.address, DEPOSIT, _now(net) + LIFETIME)
    return payer, payee, channel


def _voucher(
    net: Net, contract: ChannelsContract, channel: int, amount: int
) -> tuple[Voucher, bytes]:
    voucher = Voucher(contract.domain(), channel, amount)
    return voucher, sign(voucher, net.owner.account)


def test_vouchers_pay_the_payee_and_the_rest_returns_to_the_payer(
    net: Net, channels: tuple[ChannelsContract, ChannelsContract, int]
) -> None:
    payer, payee, channel = channels
    opened = payer.channel(channel)
    assert (opened.payer, opened.payee, opened.token) == (
        net.owner.address, net.reporter.address, "0x" + "00" * 20
    )  # fmt: skip
    assert (opened.deposit, opened.paid, opened.closed) == (DEPOSIT, 0, False)
    # the payee checks each voucher off-chain, as the contract will
    voucher, signature = _voucher(net, payer, channel, DEPOSIT // 4)
    assert signer(voucher, signature) == net.owner.address
    assert voucher.digest() == payer.voucher_digest(channel, DEPOSIT // 4)
    before = net.reporter.balance()
    receipt = payee.settle(channel, DEPOSIT // 4, signature)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.reporter.balance() == before - gas + DEPOSIT // 4
    assert payer.channel(channel).paid == DEPOSIT // 4
    # later vouchers are cumulative: closing pays the difference, refunds the rest
    _, signature = _voucher(net, payer, channel, DEPOSIT // 2)
    payer_before, payee_before = net.owner.balance(), net.reporter.balance()
    receipt = payee.close(channel, DEPOSIT // 2, signature)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.reporter.balance() == payee_before - gas + DEPOSIT // 4
    assert net.owner.balance() == payer_before + DEPOSIT // 2
    assert payer.channel(channel).closed


def test_the_payer_takes_back_what_is_left_after_the_expiry(
    net: Net, channels: tuple[ChannelsContract, ChannelsContract, int]
) -> None:
    payer, payee, channel = channels
    _, signature = _voucher(net, payer, channel, 1_000)
    payee.settle(channel, 1_000, signature)
    with pytest.raises(Reverted, match="not expired"):
        payer.refund(channel)
    net.owner.advance_time(LIFETIME + 1)
    before = net.owner.balance()
    receipt = payer.refund(channel)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.owner.balance() == before - gas + DEPOSIT - 1_000
    with pytest.raises(Reverted, match="channel closed"):
        payee.settle(channel, 2_000, _voucher(net, payer, channel, 2_000)[1])


def test_a_top_up_adds_to_the_deposit_and_never_shortens_the_expiry(
    net: Net, channels: tuple[ChannelsContract, ChannelsContract, int]
) -> None:
    payer, payee, channel = channels
    expiry = payer.channel(channel).expiry
    payer.top_up(channel, DEPOSIT, expiry + 60)
    assert (payer.channel(channel).deposit, payer.channel(channel).expiry) == (
        2 * DEPOSIT, expiry + 60
    )  # fmt: skip
    for who, args, reason in (
        (payer, (channel, 1, expiry), "expiry moved earlier"),
        (payee, (channel, 1, expiry + 60), "not the payer"),
    ):
        with pytest.raises(Reverted, match=reason):
            who.top_up(*args)
    _, signature = _voucher(net, payer, channel, DEPOSIT + 1)  # (now within the deposit)
    payee.settle(channel, DEPOSIT + 1, signature)


def test_every_bad_voucher_is_refused_and_moves_nothing(
    net: Net, channels: tuple[ChannelsContract, ChannelsContract, int]
) -> None:
    payer, payee, channel = channels
    _, good = _voucher(net, payer, channel, 500)
    payee.settle(channel, 500, good)
    stranger = Account.create()
    forged_voucher = Voucher(payer.domain(), channel, 900)
    other_domain = Voucher(Domain(payer.domain().chain_id + 1, payer.address), channel, 900)
    cases = [
        (payee, (channel, 500, good), "not above what was paid"),  # replayed
        (payee, (channel, 400, _voucher(net, payer, channel, 400)[1]), "not above what was paid"),
        (payee, (channel, 900, sign(forged_voucher, stranger)), "bad voucher signature"),
        (payee, (channel, 900, sign(other_domain, net.owner.account)), "bad voucher signature"),
        (payee, (channel, 900, good[:64]), "bad voucher signature"),
        (payee, (channel, DEPOSIT + 1, _voucher(net, payer, channel, DEPOSIT + 1)[1]),
         "over the deposit"),
        (payee, (channel + 1, 900, _voucher(net, payer, channel + 1, 900)[1]), "unknown channel"),
        (payer, (channel, 900, _voucher(net, payer, channel, 900)[1]), "not the payee"),
    ]  # fmt: skip
    for who, args, reason in cases:
        with pytest.raises(Reverted, match=reason):
            who.settle(*args)
    assert payer.channel(channel).paid == 500
    with pytest.raises(InvalidVoucher, match="65 bytes"):
        signer(forged_voucher, b"\x00" * 10)
    with pytest.raises(InvalidVoucher, match="uint256"):
        Voucher(payer.domain(), -1, 1)


def test_opening_is_refused_without_a_deposit_a_payee_or_a_future_expiry(net: Net) -> None:
    payer = ChannelsContract(net.owner, deploy_channels(net.deployer))
    later = _now(net) + LIFETIME
    for args, reason in (
        ((net.reporter.address, 0, later), "zero deposit"),
        ((net.owner.address, DEPOSIT, later), "bad payee"),
        ((net.reporter.address, DEPOSIT, _now(net) - 1), "expiry in the past"),
    ):
        with pytest.raises(Reverted, match=reason):
            payer.open(*args)
    fn = payer.contract.functions.open(net.reporter.address, NATIVE, DEPOSIT, later)
    with pytest.raises(Reverted, match="value differs"):
        net.owner.transact(fn, DEPOSIT - 1)
    assert payer.client.call(payer.contract.functions.count()) == 0


# A contract payer (as a Safe or a device account is): it opens channels and accepts,
# through EIP-1271, vouchers its owner signed; on any other signature it reverts, as a
# Safe does, rather than answering "no".
WALLET = """
# pragma version ~=0.4.3
interface Channels:
    def open(payee: address, token: address, deposit: uint256, expiry: uint256) -> uint256: payable

owner: public(immutable(address))

@deploy
@payable
def __init__(owner_: address):
    owner = owner_

@external
def open(channels: address, payee: address, deposit: uint256, expiry: uint256) -> uint256:
    assert msg.sender == owner, "not the owner"
    return extcall Channels(channels).open(payee, empty(address), deposit, expiry, value=deposit)

@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    assert ecrecover(digest, v, r, s) == owner, "not the owner's signature"
    return 0x1626ba7e

@external
@payable
def __default__():
    pass
"""


def test_a_contract_payers_vouchers_are_checked_through_eip_1271(net: Net) -> None:
    compiled = compile_code(WALLET, output_formats=["abi", "bytecode"])
    artifact = Artifact("Wallet", compiled["abi"], bytes.fromhex(compiled["bytecode"][2:]), "")
    wallet_address = net.owner.deploy_artifact(artifact, net.owner.address, value=2 * DEPOSIT)
    wallet = net.owner.contract(artifact, wallet_address)
    address = deploy_channels(net.deployer)
    payee = ChannelsContract(net.reporter, address)
    open_fn = wallet.functions.open(address, net.reporter.address, DEPOSIT, _now(net) + LIFETIME)
    net.owner.transact(open_fn)
    channel = 1
    assert payee.channel(channel).payer == wallet_address
    voucher = Voucher(payee.domain(), channel, 700)
    with pytest.raises(Reverted, match="bad voucher signature"):
        payee.settle(channel, 700, sign(voucher, Account.create()))  # the wallet reverts
    with pytest.raises(Reverted, match="bad voucher signature"):
        payee.settle(channel, 700, sign(voucher, net.owner.account) + b"\x00")  # too long for it
    payee.settle(channel, 700, sign(voucher, net.owner.account))
    before = net.owner.balance(wallet_address)
    payee.close(channel, 700)  # (what was paid already: no voucher needed)
    assert net.owner.balance(wallet_address) == before + DEPOSIT - 700


TOKEN = """
# pragma version ~=0.4.3
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

@deploy
def __init__(holder: address, supply: uint256):
    self.balanceOf[holder] = supply

@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True

@external
def transfer(to: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    return True

@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True
"""


def test_a_token_channel_pays_in_the_token(net: Net) -> None:
    compiled = compile_code(TOKEN, output_formats=["abi", "bytecode"])
    artifact = Artifact("Token", compiled["abi"], bytes.fromhex(compiled["bytecode"][2:]), "")
    token_address = net.deployer.deploy_artifact(artifact, net.owner.address, 10 * DEPOSIT)
    token = net.owner.contract(artifact, token_address)
    address = deploy_channels(net.deployer)
    payer, payee = ChannelsContract(net.owner, address), ChannelsContract(net.reporter, address)
    expiry = _now(net) + LIFETIME
    with pytest.raises(Reverted):  # nothing approved yet: the token refuses the transfer
        payer.open(net.reporter.address, DEPOSIT, expiry, token=token_address)
    net.owner.transact(token.functions.approve(address, 2 * DEPOSIT))
    channel = payer.open(net.reporter.address, DEPOSIT, expiry, token=token_address)
    fn = payer.contract.functions.top_up(channel, DEPOSIT, expiry)
    with pytest.raises(Reverted, match="native value sent for a token channel"):
        net.owner.transact(fn, 1)
    payer.top_up(channel, DEPOSIT, expiry)
    _, signature = _voucher(net, payer, channel, 1_234)
    payee.close(channel, 1_234, signature)

    def balance(who: str) -> int:
        return int(net.owner.call(token.functions.balanceOf(who)))

    assert (balance(net.reporter.address), balance(address)) == (1_234, 0)
    assert balance(net.owner.address) == 10 * DEPOSIT - 1_234


def test_a_channel_for_a_device_splits_each_payment_between_its_node_and_its_owner(
    net: Net,
) -> None:
    """The owner (net.owner) sells its device's readings through the node
    (net.reporter) to a consumer (net.deployer), the node keeping 20%."""
    registry = net.registry()
    did = did_from_key(SoftwareSigner.generate().public_key)
    registry.register_device(did, MIN_STAKE)
    registry.set_price(did, 100, node_bps=2_000)
    address = deploy_channels(net.deployer, net.deployment.contracts["Registry"])
    consumer, node = (
        ChannelsContract(net.deployer, address),
        ChannelsContract(net.reporter, address),
    )
    with pytest.raises(Reverted, match="unknown device"):
        consumer.open_for(device_id(new_did()), net.reporter.address, DEPOSIT, _now(net) + LIFETIME)
    channel = consumer.open_for(device_id(did), net.reporter.address, DEPOSIT, _now(net) + LIFETIME)
    assert (consumer.channel(channel).device, consumer.channel(channel).node_bps) == (
        device_id(did), 2_000
    )  # fmt: skip
    registry.set_price(did, 100, node_bps=9_000)  # later terms: not this channel's
    node_before = net.reporter.balance()
    signature = sign(Voucher(node.domain(), channel, 10_000), net.deployer.account)
    receipt = node.settle(channel, 10_000, signature)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.reporter.balance() == node_before - gas + 2_000
    assert node.owed(net.owner.address) == 8_000
    signature = sign(Voucher(node.domain(), channel, 15_000), net.deployer.account)
    consumer_before = net.deployer.balance()
    node.close(channel, 15_000, signature)
    assert node.owed(net.owner.address) == 12_000
    assert net.deployer.balance() == consumer_before + DEPOSIT - 15_000
    owner = ChannelsContract(net.owner, address)
    before = net.owner.balance()
    receipt = owner.withdraw()
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.owner.balance() == before - gas + 12_000
    with pytest.raises(Reverted, match="nothing owed"):
        owner.withdraw()
    plain = ChannelsContract(net.deployer, deploy_channels(net.deployer))
    with pytest.raises(Reverted, match="no registry"):
        plain.open_for(device_id(did), net.reporter.address, DEPOSIT, _now(net) + LIFETIME)
