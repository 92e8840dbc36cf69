"""Pay per reading over HTTP 402: a node sells a priced device's readings as x402
v2 does, for cumulative channel vouchers it checks off-chain; a buyer pays,
verifies every proof, never passes its budget; the node settles in batches,
which pays it its share and credits the owner the rest; the buyer takes back
what is left after the expiry. Every bad voucher gets a 402 and moves nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from vyper.compiler import compile_code
from web3 import Web3

from tests.chain.conftest import anvil_accounts
from tests.cli.command import no_traceback, trustmesh
from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.chain.accounts import key_coordinates
from trustmesh.chain.bundle_facts import chain_lookup
from trustmesh.chain.bundler import RpcBundler
from trustmesh.chain.channels import ChannelsContract
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.compile import Artifact, load_contract
from trustmesh.chain.embedded import dev_keys
from trustmesh.chain.suite import Deployment, LogAnchor, Registry, device_id
from trustmesh.device import Device
from trustmesh.device.wallet import Wallet, WalletPayer
from trustmesh.errors import InvalidVoucher, Reverted
from trustmesh.identity import SoftwareSigner
from trustmesh.market.buyer import Buyer, OverBudget, SafePayer
from trustmesh.market.vouchers import Voucher, sign, sign_device
from trustmesh.market.x402_channel import ChannelPayment

PRICE = 1_000  # wei a reading
NODE_BPS = 2_000  # the node keeps 20%
READINGS = 1_000


def _required(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 402, answer.text[:300]
    document: dict[str, Any] = json.loads(base64.b64decode(answer.headers["payment-required"]))
    return document


def _signature_header(payment: ChannelPayment, accepted: dict[str, Any]) -> str:
    payload = {"x402Version": 2, "payload": payment.to_payload(), "accepted": accepted}
    return base64.b64encode(json.dumps(payload).encode()).decode()


@dataclass
class Shop:
    """A node selling a priced device's readings, and the accounts around it."""

    node: RunningNode
    w3: Web3
    owner: ChainClient
    buyer: ChainClient
    stranger: ChainClient
    deployment: Deployment
    device: Device

    @property
    def readings_url(self) -> str:
        return f"{self.node.url}/v1/devices/{self.device.did}/readings"


def _shop(node: RunningNode, tmp_path: Path, anvil_url: str | None = None) -> Shop:
    """A device with 1,000 readings logged and anchored, then priced by its owner;
    on the node's embedded chain, or on anvil (the node's account is anvil's first,
    Alto's the last three)."""
    if anvil_url is None:
        w3 = rpc_web3(node.url + "/rpc")
        keys = [Account.from_key(dev_keys()[k]) for k in (3, 4, 5)]
    else:
        w3, keys = rpc_web3(anvil_url), anvil_accounts(range(3, 6))
    owner, buyer, stranger = (ChainClient(w3, key) for key in keys)
    deployment = Deployment(int(node.info["chain_id"]), dict(node.info["contracts"]))
    shop = Shop(node, w3, owner, buyer, stranger, deployment,
                Device(SoftwareSigner.generate(), tmp_path / "d.seq"))  # fmt: skip
    registry = Registry(owner, deployment)
    registry.register_device(shop.device.did, registry.min_stake())
    batch = b"".join(shop.device.sign("t", i) for i in range(READINGS))
    posted = httpx.post(f"{node.url}/v1/readings", content=batch,
                        headers={"content-type": "application/cbor-seq"}, timeout=60)  # fmt: skip
    assert posted.status_code == 200, posted.text
    anchor = LogAnchor(stranger, deployment)
    wait_until(lambda: anchor.latest(node.info["origin"])[0] >= READINGS, "the anchor", seconds=60)
    assert httpx.get(shop.readings_url, params={"limit": "3"}).status_code == 200  # free so far
    registry.set_price(shop.device.did, PRICE, node_bps=NODE_BPS)
    wait_until(  # the node takes a price as read for a few seconds
        lambda: httpx.get(shop.readings_url, params={"limit": "7"}).status_code == 402, "the price"
    )
    return shop


@pytest.mark.parametrize("chain", ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def test_a_consumer_buys_a_priced_devices_readings(
    start_node: Callable[..., RunningNode],
    tmp_path: Path,
    chain: str,
    request: pytest.FixtureRequest,
) -> None:
    node = start_node(chain=chain, epoch=0.5, settle_seconds=1.0)
    anvil = request.getfixturevalue("anvil_url") if chain == "anvil" else None
    shop = _shop(node, tmp_path, anvil)
    node, device, deployment = shop.node, shop.device, shop.deployment
    readings_url, buyer_client, owner = shop.readings_url, shop.buyer, shop.owner
    # unpaid: x402 v2's 402, offering the channel scheme for this many readings
    required = _required(httpx.get(readings_url, params={"limit": "7"}))
    (offer,) = required["accepts"]
    assert required["x402Version"] == 2 and offer["scheme"] == "trustmesh-channel"
    assert (offer["amount"], offer["network"]) == (
        str(7 * PRICE),
        f"eip155:{node.info['chain_id']}",
    )
    assert offer["extra"]["device"] == "0x" + device_id(device.did).hex()
    assert offer["extra"]["channels"] == deployment.contracts["Channels"]
    node_address = offer["payTo"]

    # a buyer pays for 1,000 readings, then 3 x 10 more; every proof verifies
    lookup = chain_lookup(
        shop.w3, deployment.chain_id, deployment.contracts["LogAnchor"], cached=True
    )
    budget = (READINGS + 30) * PRICE
    buyer = Buyer(buyer_client, node.url, budget, chain=lookup)
    bought = buyer.buy(device.did, limit=READINGS)
    assert len(bought.bundles) == READINGS and bought.spent == READINGS * PRICE
    for _ in range(3):
        assert len(buyer.buy(device.did, limit=10).bundles) == 10
    assert buyer.spent == budget
    with pytest.raises(OverBudget):  # not a wei more than the budget
        buyer.buy(device.did, limit=1)
    assert buyer.spent == budget
    channel = bought.channel
    assert channel is not None

    # bad vouchers: each a 402, and nothing kept
    channels = ChannelsContract(shop.stranger, deployment.contracts["Channels"])
    accepted = _required(httpx.get(readings_url, params={"limit": "1"}))["accepts"][0]

    def pay(payment: ChannelPayment) -> httpx.Response:
        header = _signature_header(payment, accepted)
        return httpx.get(readings_url, params={"limit": "1"}, headers={"PAYMENT-SIGNATURE": header})

    def voucher(amount: int, key: Any = buyer_client.account, on: int = channel) -> ChannelPayment:
        return ChannelPayment(on, amount, sign(Voucher(channels.domain(), on, amount), key),
                              buyer_client.address)  # fmt: skip

    cases = {
        "replayed": voucher(budget),
        "below the last": voucher(budget - PRICE),
        "signed by another key": voucher(budget + PRICE, Account.create()),
        "over the deposit": voucher(budget + 10**18),
        "unknown channel": voucher(budget + PRICE, on=channel + 1000),
    }
    for case, payment in cases.items():
        refused = _required(pay(payment))
        assert refused["error"], case
    # settled in a batch: the node paid its share, the owner credited the rest
    wait_until(lambda: channels.channel(channel).paid == budget, "the settlement", seconds=30)
    assert channels.owed(owner.address) == budget - budget * NODE_BPS // 10_000
    node_balance_share = budget * NODE_BPS // 10_000
    assert node_balance_share > 0 and channels.channel(channel).payee == node_address
    before = owner.balance()
    receipt = ChannelsContract(owner, channels.address).withdraw()
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert owner.balance() == before - gas + budget - node_balance_share
    # after the expiry the buyer takes back what is left of its deposit
    left = channels.channel(channel).deposit - budget
    buyer_client.advance_time(buyer.lifetime + 1)
    before = buyer_client.balance()
    receipt = ChannelsContract(buyer_client, channels.address).refund(channel)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert buyer_client.balance() == before - gas + left
    assert _required(pay(voucher(budget + PRICE)))["error"]  # a closed channel pays no more


def test_market_buy_stops_at_the_budget_and_reuses_its_channel(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    shop = _shop(start_node(epoch=0.5), tmp_path)
    env = {"TRUSTMESH_CHAIN_KEY": dev_keys()[6]}
    args = ["market", "buy", "--did", shop.device.did, "--node", shop.node.url]
    # a budget for 100 (the channel's deposit), 50 asked for; then 20 more, budget-bound
    first = trustmesh(*args, "--budget", str(100 * PRICE), "--limit", "50",
                      "--out", tmp_path / "b.json", env=env)  # fmt: skip
    no_traceback(first)
    assert first.returncode == 0, first.stderr.decode()
    bought = json.loads(first.stdout)
    assert (bought["bought"], bought["spent"], bought["price_per_reading"]) == (
        50, 50 * PRICE, PRICE
    )  # fmt: skip
    assert len(json.loads((tmp_path / "b.json").read_text())) == 50
    again = trustmesh(*args, "--budget", str(20 * PRICE + 999), env=env)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout)["channel"] == bought["channel"]  # resumed, not reopened
    assert (json.loads(again.stdout)["bought"], json.loads(again.stdout)["spent"]) == (
        20, 20 * PRICE
    )  # fmt: skip
    for budget in ("0", str(PRICE - 1)):
        refused = trustmesh(*args, "--budget", budget, env=env)
        no_traceback(refused)
        assert refused.returncode == 2, refused.stderr.decode()


def test_a_device_pays_for_readings_from_its_own_account(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """The device SDK pays for a service from its own account: its channel opened
    by a user operation (the node bundles it), its vouchers signed by its P-256
    key, checked by the node with that key and settled through EIP-1271."""
    shop = _shop(start_node(epoch=0.5, settle_seconds=1.0), tmp_path)
    bundler = RpcBundler(shop.node.url + "/bundler")
    wallet = Wallet(SoftwareSigner.generate(), shop.w3, bundler)
    shop.stranger.send_raw(wallet.address, b"", "funding the wallet", value=10**17)
    viewer = ChainClient(shop.w3, Account.create())  # reads only
    buyer = Buyer(viewer, shop.node.url, 40 * PRICE, payer=WalletPayer(wallet))
    assert len(buyer.buy(shop.device.did, limit=25).bundles) == 25
    channel = buyer.buy(shop.device.did, limit=15).channel
    assert buyer.spent == 40 * PRICE and channel is not None
    channels = ChannelsContract(shop.stranger, shop.deployment.contracts["Channels"])
    assert channels.channel(channel).payer == wallet.address
    wait_until(lambda: channels.channel(channel).paid == 40 * PRICE, "the settlement")
    bundler.close()


def test_malformed_payments_get_a_402_never_a_500(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    shop = _shop(start_node(epoch=0.5), tmp_path)
    url = shop.readings_url
    accepted = _required(httpx.get(url, params={"limit": "1"}))["accepts"][0]

    def encoded(document: object) -> str:
        return base64.b64encode(json.dumps(document).encode()).decode()

    good = {"channel": "1", "amount": "1000", "signature": "0x" + "11" * 65,
            "payer": shop.buyer.address}  # fmt: skip
    headers = [
        "not base64 at all!", base64.b64encode(b"\xff\xfe").decode(), encoded([1, 2]),
        encoded({"x402Version": 2}), encoded({"x402Version": 2, "payload": "x", "accepted": 1}),
        encoded({"x402Version": 1, "payload": good, "accepted": accepted}),
        encoded({"x402Version": 2, "payload": {}, "accepted": accepted}),
        encoded({"x402Version": 2, "payload": {**good, "amount": "-5"}, "accepted": accepted}),
        encoded({"x402Version": 2, "payload": {**good, "amount": str(1 << 300)},
                 "accepted": accepted}),
        encoded({"x402Version": 2, "payload": {**good, "payer": "0x12"}, "accepted": accepted}),
        encoded({"x402Version": 2, "payload": {**good, "signature": "zz"}, "accepted": accepted}),
        encoded({"x402Version": 2, "payload": good,
                 "accepted": {**accepted, "amount": "1"}}),
        encoded({"x402Version": 2, "payload": good, "accepted": {**accepted, "scheme": "exact"}}),
        encoded({"x402Version": 2, "payload": good,
                 "accepted": {**accepted, "extra": {"device": "0xzz"}}}),
    ]  # fmt: skip
    for header in headers:
        answer = httpx.get(url, params={"limit": "1"}, headers={"PAYMENT-SIGNATURE": header})
        assert answer.status_code == 402, (header, answer.status_code, answer.text[:200])
    assert httpx.get(f"{shop.node.url}/v1/channels/abc").status_code == 400


def test_a_device_priced_in_a_token_is_sold_by_channels_and_exact_payments(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """A device priced in a token: its channels are in the token, their settlement
    splitting it between node and owner; where the node keeps the whole price,
    x402's `exact` is offered too (each payment an EIP-3009 transfer settled at
    once, to one account: the per-payment baseline)."""
    shop = _shop(start_node(epoch=0.5, settle_seconds=1.0), tmp_path)
    token_address = shop.owner.deploy("PaymentToken", "trustmesh USD", "TUSD", 6, "1")
    token = shop.owner.contract(load_contract("PaymentToken"), token_address)
    shop.owner.transact(token.functions.mint(shop.buyer.address, 10**9))
    registry = Registry(shop.owner, shop.deployment)
    registry.set_price(shop.device.did, 500, node_bps=NODE_BPS, currency=token_address)

    def offers() -> list[dict[str, Any]]:
        answer = httpx.get(shop.readings_url, params={"limit": "4"})
        return list(_required(answer)["accepts"]) if answer.status_code == 402 else []

    def balance(address: str) -> int:
        return int(shop.owner.call(token.functions.balanceOf(address)))

    wait_until(lambda: [o["asset"] for o in offers()] == [token_address], "the token price")
    node_address = offers()[0]["payTo"]
    by_channel = Buyer(shop.buyer, shop.node.url, 5_000)
    channel = by_channel.buy(shop.device.did, limit=10).channel
    assert channel is not None and by_channel.spent == 5_000
    channels = ChannelsContract(shop.stranger, shop.deployment.contracts["Channels"])
    assert channels.channel(channel).token == token_address
    wait_until(lambda: channels.channel(channel).paid == 5_000, "the settlement")
    assert balance(node_address) == 5_000 * NODE_BPS // 10_000
    assert channels.owed(shop.owner.address, token_address) == 5_000 - 5_000 * NODE_BPS // 10_000
    # a channel in another currency than the device's price is refused on-chain
    stranger = ChannelsContract(shop.stranger, channels.address)
    with pytest.raises(Reverted, match="not the device's currency"):
        stranger.open_for(device_id(shop.device.did), node_address, 10**15, 2**40)

    registry.set_price(shop.device.did, 500, node_bps=10_000, currency=token_address)
    wait_until(lambda: len(offers()) == 2, "the exact offer")
    channel_offer, exact_offer = offers()
    assert (channel_offer["scheme"], exact_offer["scheme"]) == ("trustmesh-channel", "exact")
    assert exact_offer["asset"] == token_address
    assert exact_offer["extra"] == {"name": "trustmesh USD", "version": "1"}
    before = balance(node_address)
    exact = Buyer(shop.buyer, shop.node.url, 10_000, scheme="exact")
    assert len(exact.buy(shop.device.did, limit=4).bundles) == 4
    assert (exact.spent, balance(node_address)) == (2_000, before + 2_000)  # settled at once


def test_a_safe_pays_for_readings_with_its_owners_signatures(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """A Safe's channel and vouchers, its owners signing: the node checks the
    vouchers off-chain against the Safe's owners and threshold, the contract
    settles them through the Safe's EIP-1271."""
    from tests.chain.safes import deploy_safe

    shop = _shop(start_node(epoch=0.5, settle_seconds=1.0), tmp_path)
    owned = deploy_safe(shop.stranger)
    shop.stranger.send_raw(owned.safe.address, b"", "funding the Safe", value=10**16)
    payer = SafePayer(owned.safe, owned.eoas)
    buyer = Buyer(shop.buyer, shop.node.url, 100 * PRICE, payer=payer)  # (a deposit of 100)
    assert len(buyer.buy(shop.device.did, limit=20).bundles) == 20
    channel = buyer.buy(shop.device.did, limit=10).channel
    assert channel is not None and buyer.spent == 30 * PRICE
    channels = ChannelsContract(shop.stranger, shop.deployment.contracts["Channels"])
    assert channels.channel(channel).payer == owned.safe.address
    wait_until(lambda: channels.channel(channel).paid == 30 * PRICE, "the settlement")
    # one owner of the two needed: its vouchers on the same channel are refused
    lone = Buyer(shop.buyer, shop.node.url, 30 * PRICE, payer=SafePayer(owned.safe, owned.eoas[:1]))
    with pytest.raises(InvalidVoucher, match="needs 2"):
        lone.buy(shop.device.did, limit=1)
    assert lone.spent == 0


# A contract that claims a device's key (`key()`) but is not that key's account:
# its vouchers would pass an off-chain check by the key and fail on-chain.
IMPOSTOR = """
# pragma version ~=0.4.3
interface Channels:
    def open_for(device: bytes32, payee: address, token: address, deposit: uint256,
                 expiry: uint256) -> uint256: payable

KEY: immutable(Bytes[64])

@deploy
@payable
def __init__(key_: Bytes[64]):
    KEY = key_

@external
@view
def key() -> Bytes[64]:
    return KEY

@external
def open(channels: address, device: bytes32, payee: address, deposit: uint256,
         expiry: uint256) -> uint256:
    return extcall Channels(channels).open_for(device, payee, empty(address), deposit, expiry,
                                               value=deposit)
"""


def test_a_contract_claiming_a_devices_key_is_not_taken_for_its_account(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    shop = _shop(start_node(epoch=0.5), tmp_path)
    device = SoftwareSigner.generate()
    x, y = key_coordinates(device.public_key)
    compiled = compile_code(IMPOSTOR, output_formats=["abi", "bytecode"])
    artifact = Artifact("Impostor", compiled["abi"], bytes.fromhex(compiled["bytecode"][2:]), "")
    impostor = shop.stranger.contract(
        artifact, shop.stranger.deploy_artifact(artifact, x + y, value=10**16)
    )
    required = _required(httpx.get(shop.readings_url, params={"limit": "1"}))
    accepted = required["accepts"][0]
    channels = ChannelsContract(shop.stranger, shop.deployment.contracts["Channels"])
    receipt = shop.stranger.transact(impostor.functions.open(
        channels.address, device_id(shop.device.did), accepted["payTo"], 10**15, 2**40
    ))  # fmt: skip
    channel = channels.opened(receipt)
    voucher = Voucher(channels.domain(), channel, PRICE)
    payment = ChannelPayment(channel, PRICE, sign_device(voucher, device), impostor.address)
    refused = _required(httpx.get(
        shop.readings_url, params={"limit": "1"},
        headers={"PAYMENT-SIGNATURE": _signature_header(payment, accepted)},
    ))  # fmt: skip
    assert "not the device account of its key" in refused["error"]
