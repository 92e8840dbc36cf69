"""Device accounts: a device pays from its own ERC-4337 account with its own
P-256 key (in memory, or inside SoftHSM), through the canonical EntryPoint v0.8;
on the embedded chain the node's bundler carries the operations, on anvil
Pimlico's Alto does. Every bad operation is refused with the EntryPoint's
reason and moves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3

from tests.chain.conftest import anvil_accounts
from tests.conftest import REPO, SoftHsmToken
from trustmesh.chain.accounts import (
    account_address,
    deploy_account_contracts,
    factory_address,
    key_coordinates,
)
from trustmesh.chain.bundler import Bundler, LocalBundler, RpcBundler
from trustmesh.chain.channels import NATIVE, ChannelsContract, deploy_channels
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.compile import load_contract
from trustmesh.chain.create2 import DEPLOYER, DEPLOYER_CODE
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.entrypoint import ENTRY_POINT, entry_point_artifact
from trustmesh.chain.userop import UserOperation
from trustmesh.device.wallet import Wallet
from trustmesh.errors import InvalidVoucher, RefusedUserOperation, Reverted
from trustmesh.identity import Alg, Pkcs11Signer, Signer, SoftwareSigner
from trustmesh.market.ledger import Ledger, Terms
from trustmesh.market.vouchers import Voucher, sign_device

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
FUNDS = 10**18
EIP1271 = bytes.fromhex("1626ba7e")


@dataclass
class AaNet:
    kind: str
    w3: Web3
    funder: ChainClient  # funds accounts, plays a stranger
    bundler: Bundler

    def wallet(self, signer: Signer) -> Wallet:
        wallet = Wallet(signer, self.w3, self.bundler)
        self.funder.send_raw(wallet.address, b"", "funding a wallet", value=FUNDS)
        return wallet


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def aa(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AaNet]:
    if request.param == "embedded":
        chain = EmbeddedChain.open(tmp_path / "chain")
        node, funder = (ChainClient(chain.w3, a) for a in chain.dev_accounts[3:5])
        deploy_account_contracts(funder)
        yield AaNet("embedded", chain.w3, funder, LocalBundler(node))
        chain.close()
    else:
        bundler = RpcBundler(request.getfixturevalue("alto_url"))
        w3 = rpc_web3(request.getfixturevalue("anvil_url"))
        (account,) = anvil_accounts(range(6, 7))
        yield AaNet("anvil", w3, ChainClient(w3, account), bundler)
        bundler.close()


def _payee() -> ChecksumAddress:
    """A fresh address with no balance."""
    return Web3.to_checksum_address(SoftwareSigner.generate().public_key.raw[1:21])


def test_a_device_wallet_is_where_its_did_says_before_it_exists(aa: AaNet) -> None:
    device = SoftwareSigner.generate()
    factory = aa.funder.contract(load_contract("DeviceAccountFactory"), factory_address())
    x, y = key_coordinates(device.public_key)
    assert aa.funder.call(factory.functions.account_address(x, y)) == account_address(
        device.public_key
    )
    # the canonical EntryPoint, at its address
    assert aa.w3.eth.get_code(Web3.to_checksum_address(ENTRY_POINT))
    assert bytes(aa.w3.eth.get_code(Web3.to_checksum_address(DEPLOYER))) == DEPLOYER_CODE
    wallet = aa.wallet(device)
    assert (wallet.address, wallet.deployed()) == (account_address(device.public_key), False)
    receipt = wallet.deploy()
    assert receipt is not None and receipt.success
    assert wallet.deployed() and wallet.deploy() is None
    account = aa.funder.contract(load_contract("DeviceAccount"), wallet.address)
    assert aa.funder.call(account.functions.key()) == x + y


def test_the_local_hash_of_an_operation_is_the_entry_points(aa: AaNet) -> None:
    entry_point = aa.funder.contract(entry_point_artifact(), ENTRY_POINT)
    op = UserOperation(
        sender=account_address(SoftwareSigner.generate().public_key), nonce=7,
        call_data=b"\x01\x02", call_gas_limit=1, verification_gas_limit=2,
        pre_verification_gas=3, max_fee_per_gas=4, max_priority_fee_per_gas=5,
        factory=factory_address(), factory_data=b"\xaa" * 68, signature=b"\x09" * 64,
    )  # fmt: skip
    for variant in (op, replace(op, factory=None, factory_data=b""), replace(op, nonce=8)):
        expected = aa.funder.call(entry_point.functions.getUserOpHash(variant.packed()))
        assert variant.hash(ENTRY_POINT, aa.funder.chain_id) == bytes(expected)
    assert UserOperation.from_rpc(op.rpc()) == op


def test_a_device_pays_from_its_own_account(aa: AaNet) -> None:
    wallet = aa.wallet(SoftwareSigner.generate())
    payee = _payee()
    first = wallet.pay(payee, 12_345)  # deploys the account on the way
    assert first.success and wallet.deployed()
    second = wallet.pay(payee, 55_000)
    assert aa.w3.eth.get_balance(payee) == 67_345
    spent = 67_345 + first.actual_gas_cost + second.actual_gas_cost
    assert wallet.balance() + wallet.deposit() == FUNDS - spent
    assert wallet.nonce() == 2


@pytest.mark.softhsm
def test_a_device_pays_with_the_key_in_its_secure_element(aa: AaNet, softhsm: SoftHsmToken) -> None:
    with Pkcs11Signer.generate(softhsm.uri(f"account-{aa.kind}"), Alg.ES256) as device:
        wallet = aa.wallet(device)
        payee = _payee()
        wallet.pay(payee, 1_000)
        wallet.pay(payee, 2_000)
        assert aa.w3.eth.get_balance(payee) == 3_000


def _signed_op(aa: AaNet, wallet: Wallet, signer: Signer, payee: str, amount: int) -> UserOperation:
    call = function_signature_to_4byte_selector("execute(address,uint256,bytes)") + encode(
        ["address", "uint256", "bytes"], [payee, amount, b""]
    )
    fee = int(aa.w3.eth.gas_price)
    op = UserOperation(
        sender=wallet.address, nonce=wallet.nonce(), call_data=call, call_gas_limit=60_000,
        verification_gas_limit=80_000, pre_verification_gas=80_000, max_fee_per_gas=2 * fee,
        max_priority_fee_per_gas=fee,
    )  # fmt: skip
    return op.signed(signer.sign(op.hash(ENTRY_POINT, int(aa.w3.eth.chain_id))))


def _high_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (P256_N - s).to_bytes(32, "big")


def test_bad_operations_are_refused_and_move_nothing(aa: AaNet) -> None:
    device = SoftwareSigner.generate()
    wallet = aa.wallet(device)
    wallet.deploy()
    payee = _payee()
    before = wallet.balance()
    stranger = SoftwareSigner.generate()
    forged = _signed_op(aa, wallet, stranger, payee, 1_000)  # the wrong key
    with pytest.raises(RefusedUserOperation, match="AA24"):
        aa.bundler.send(forged)
    mangled = forged.signed(forged.signature[:63])  # a signature of the wrong length
    with pytest.raises(RefusedUserOperation, match="AA24"):
        aa.bundler.send(mangled)
    good = _signed_op(aa, wallet, device, payee, 1_000)
    stale = replace(good, nonce=good.nonce + 5)  # a nonce ahead (and the signature no longer fits)
    with pytest.raises(RefusedUserOperation, match="AA2"):
        aa.bundler.send(stale)
    assert wallet.balance() == before and aa.w3.eth.get_balance(payee) == 0
    # high-S signatures (hardware produces them half the time) are accepted...
    flipped = good.signed(_high_s(good.signature))
    assert wallet._wait(aa.bundler.send(flipped)).success
    assert aa.w3.eth.get_balance(payee) == 1_000
    # ...and neither form can be replayed: the nonce is spent
    for replay in (good, flipped):
        with pytest.raises(RefusedUserOperation, match="AA25|nonce"):
            aa.bundler.send(replay)
    assert aa.w3.eth.get_balance(payee) == 1_000


def test_eip1271_answers_for_the_device_key_alone(aa: AaNet) -> None:
    device = SoftwareSigner.generate()
    wallet = aa.wallet(device)
    wallet.deploy()
    account = aa.funder.contract(load_contract("DeviceAccount"), wallet.address)
    digest = bytes(range(32))
    signature = device.sign(digest)

    def answer(signature: bytes, digest: bytes = digest) -> bytes:
        return bytes(aa.funder.call(account.functions.isValidSignature(digest, signature)))

    assert answer(signature) == EIP1271
    assert answer(_high_s(signature)) == EIP1271
    assert answer(SoftwareSigner.generate().sign(digest)) == b"\xff" * 4
    assert answer(signature, bytes(32)) == b"\xff" * 4
    assert answer(signature[:63]) == answer(signature + b"\x00") == b"\xff" * 4


def test_an_owner_recovers_and_a_stranger_cannot(aa: AaNet) -> None:
    device = SoftwareSigner.generate()
    wallet = aa.wallet(device)
    wallet.deploy()
    account = aa.funder.contract(load_contract("DeviceAccount"), wallet.address)
    payee = _payee()
    with pytest.raises(Reverted, match="only the entry point"):
        aa.funder.transact(account.functions.execute(payee, 1, b""))
    with pytest.raises(Reverted, match="only the account or its owner"):
        aa.funder.transact(account.functions.set_owner(aa.funder.address))
    # the device names the owner through an operation that calls the account itself
    set_owner = account.functions.set_owner(aa.funder.address)._encode_transaction_data()
    wallet.execute(wallet.address, 0, bytes.fromhex(set_owner[2:]))
    assert aa.funder.call(account.functions.owner()) == aa.funder.address
    aa.funder.transact(account.functions.execute(payee, 4_242, b""))
    assert aa.w3.eth.get_balance(payee) == 4_242


def test_the_vendored_entry_point_is_the_npm_packages() -> None:
    """The EntryPoint kept in the package is byte for byte the one npm
    @account-abstraction/contracts 0.8.0 ships (scripts/test installs it)."""
    import json

    shipped = REPO / ".tools/node_modules/@account-abstraction/contracts/artifacts/EntryPoint.json"
    if not shipped.is_file():
        pytest.fail("npm @account-abstraction/contracts is not installed: run scripts/test")
    document = json.loads(shipped.read_text())
    assert bytes.fromhex(document["bytecode"][2:]) == entry_point_artifact().bytecode
    assert document["abi"] == entry_point_artifact().abi


def test_a_device_account_pays_over_a_channel(aa: AaNet) -> None:
    """The account opens a channel from its own funds; its vouchers, signed by the
    device key, pass the payee's ledger off-chain and the contract's EIP-1271
    check on-chain; a voucher from any other key passes neither."""
    device = SoftwareSigner.generate()
    wallet = aa.wallet(device)
    channels = ChannelsContract(aa.funder, deploy_channels(aa.funder))
    payee = aa.funder.address
    expiry = int(aa.w3.eth.get_block("latest")["timestamp"]) + 3_600
    opening = channels.contract.functions.open(payee, NATIVE, 10**15, expiry)
    wallet.execute(channels.address, 10**15, bytes.fromhex(opening._encode_transaction_data()[2:]))
    channel = channels.contract.events.Opened().get_logs(from_block=0)[-1]["args"]["channel"]
    assert channels.channel(channel).payer == wallet.address == account_address(device.public_key)
    ledger = Ledger(channels.domain())
    ledger.track(channel, Terms(device.public_key, deposit=10**15, expiry=expiry))
    voucher = Voucher(channels.domain(), channel, 5_000)
    forged = sign_device(voucher, SoftwareSigner.generate())
    with pytest.raises(InvalidVoucher):
        ledger.accept(channel, 5_000, forged, price=5_000, now=expiry - 3_000)
    with pytest.raises(Reverted, match="bad voucher signature"):
        channels.settle(channel, 5_000, forged)
    signature = sign_device(voucher, device)
    assert ledger.accept(channel, 5_000, signature, price=5_000, now=expiry - 3_000) == 5_000
    before = aa.funder.balance()
    receipt = channels.settle(channel, 5_000, signature)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert aa.funder.balance() == before - gas + 5_000
    # closing refunds the rest to the account (a proxy: more than `send`'s gas)
    left = wallet.balance()
    channels.close(channel, 5_000)
    assert wallet.balance() == left + 10**15 - 5_000
