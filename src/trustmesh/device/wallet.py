"""A device's wallet: its ERC-4337 account, spent with the device's own key.

The account's address follows from the device's did:key alone
(:func:`trustmesh.chain.accounts.account_address`), so it can be funded before
it exists; the first operation deploys it (the factory's call rides in the
operation). Each payment is a user operation signed by the device's signer,
the software key of a keystore or the key inside a PKCS#11 token alike, over
the EntryPoint's hash, and handed to a bundler (:mod:`trustmesh.chain.bundler`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential
from web3 import Web3
from web3.exceptions import Web3Exception

from trustmesh.chain.accounts import account_address, create_account_call, factory_address
from trustmesh.chain.bundler import Bundler, OpReceipt
from trustmesh.chain.channels import NATIVE, ChannelsContract
from trustmesh.chain.entrypoint import entry_point_artifact
from trustmesh.chain.userop import UserOperation
from trustmesh.errors import ChainError, InvalidVoucher, RefusedUserOperation
from trustmesh.identity import Alg, PublicKey, Signer
from trustmesh.market.vouchers import Voucher, check_device, sign_device

__all__ = ["Wallet", "wallet_address"]

T = TypeVar("T")
_EXECUTE = function_signature_to_4byte_selector("execute(address,uint256,bytes)")


class WalletPayer:
    """A device paying for a service from its own account: channels opened by user
    operations, vouchers signed by the device's key (the node checks them with
    that key off-chain, the Channels contract through the account's EIP-1271).
    A payer for :class:`trustmesh.market.buyer.Buyer`."""

    def __init__(self, wallet: Wallet) -> None:
        self.wallet = wallet

    @property
    def address(self) -> str:
        return self.wallet.address

    def open_channel(
        self, channels: ChannelsContract, device: bytes, payee: str, deposit: int, expiry: int,
        token: str,
    ) -> int:  # fmt: skip
        if token != NATIVE:
            raise ValueError("a device's wallet pays in the native currency")
        call = channels.contract.functions.open_for(
            device, to_checksum_address(payee), NATIVE, deposit, expiry
        )
        data = bytes.fromhex(call._encode_transaction_data()[2:])
        done = self.wallet.execute(channels.address, deposit, data)
        mined = self.wallet._read(
            lambda: self.wallet.w3.eth.get_transaction_receipt(HexBytes(done.transaction_hash))
        )
        return channels.opened(mined, payer=self.wallet.address)

    def sign(self, voucher: Voucher) -> bytes:
        return sign_device(voucher, self.wallet.signer)

    def signed(self, voucher: Voucher, signature: bytes) -> bool:
        try:
            check_device(voucher, signature, self.wallet.signer.public_key)
        except InvalidVoucher:
            return False
        return True


def wallet_address(key: PublicKey) -> str:
    """Where the device's account is (or will be), computed offline."""
    return account_address(key)


class Wallet:
    """The account of ``signer``'s key on the chain ``w3`` reads, through ``bundler``."""

    def __init__(
        self, signer: Signer, w3: Web3, bundler: Bundler, *, receipt_timeout: float = 60.0
    ) -> None:
        if signer.public_key.alg is not Alg.ES256:
            raise ValueError("a device wallet needs a P-256 (ES256) key")
        self.signer = signer
        self.w3 = w3
        self.bundler = bundler
        self.receipt_timeout = receipt_timeout
        self.address: ChecksumAddress = account_address(signer.public_key, bundler.entry_point)
        self._entry_point = w3.eth.contract(
            address=to_checksum_address(bundler.entry_point), abi=entry_point_artifact().abi
        )

    def deployed(self) -> bool:
        return bool(self._read(lambda: self.w3.eth.get_code(self.address)))

    def balance(self) -> int:
        return self._read(lambda: self.w3.eth.get_balance(self.address))

    def deposit(self) -> int:
        """What the account holds in the EntryPoint: its operations' prepayments,
        less their cost (the rest of each prepayment stays there for the next)."""
        return int(self._read(lambda: self._entry_point.functions.balanceOf(self.address).call()))

    def nonce(self) -> int:
        return int(self._read(lambda: self._entry_point.functions.getNonce(self.address, 0).call()))

    def pay(self, to: str, amount: int) -> OpReceipt:
        """Send ``amount`` wei to ``to`` from the account."""
        return self.execute(to, amount, b"")

    def deploy(self) -> OpReceipt | None:
        """Deploy the account (an operation with no call); None if it exists."""
        if self.deployed():
            return None
        return self._submit(b"")

    def execute(self, target: str, amount: int, data: bytes) -> OpReceipt:
        """Have the account call ``target`` with ``amount`` wei and ``data``."""
        call = _EXECUTE + encode(
            ["address", "uint256", "bytes"], [to_checksum_address(target), amount, data]
        )
        return self._submit(call)

    def _submit(self, call_data: bytes) -> OpReceipt:
        fee = int(self._read(lambda: self.w3.eth.gas_price))
        deploying = not self.deployed()
        op = UserOperation(
            sender=self.address,
            nonce=self.nonce(),
            call_data=call_data,
            call_gas_limit=0,
            verification_gas_limit=0,
            pre_verification_gas=0,
            max_fee_per_gas=2 * fee,
            max_priority_fee_per_gas=fee,
            factory=factory_address(self.bundler.entry_point) if deploying else None,
            factory_data=create_account_call(self.signer.public_key) if deploying else b"",
        )
        chain_id = int(self._read(lambda: self.w3.eth.chain_id))
        # Estimation simulates the operation: give it a real signature over the
        # estimate's own gas fields, then sign again over the final ones.
        draft = op.signed(self.signer.sign(op.hash(self.bundler.entry_point, chain_id)))
        gas = self.bundler.estimate(draft)
        op = replace(
            op,
            call_gas_limit=gas.call_gas_limit,
            verification_gas_limit=gas.verification_gas_limit,
            pre_verification_gas=gas.pre_verification_gas,
        )
        op = op.signed(self.signer.sign(op.hash(self.bundler.entry_point, chain_id)))
        op_hash = self.bundler.send(op)
        receipt = self._wait(op_hash)
        if not receipt.success:
            raise RefusedUserOperation(
                f"user operation 0x{op_hash.hex()} was mined but its call reverted"
            )
        return receipt

    def _wait(self, op_hash: bytes) -> OpReceipt:
        poll = Retrying(
            retry=retry_if_result(lambda found: found is None),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_delay(self.receipt_timeout),
            retry_error_callback=lambda _state: None,
        )
        receipt: OpReceipt | None = poll(self.bundler.receipt, op_hash)
        if receipt is None:
            raise ChainError(
                f"user operation 0x{op_hash.hex()}: no receipt within {self.receipt_timeout:.0f} s"
            )
        return receipt

    def _read(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except (ValueError, OSError, Web3Exception) as exc:
            raise ChainError(f"reading the wallet's chain: {exc}") from None
