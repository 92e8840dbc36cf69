"""Vouchers: a payer's signed promise of the cumulative amount it owes on a
channel, checked off-chain by the payee with each request and on-chain when it
settles (the Channels contract).

A voucher is EIP-712 typed data, ``Voucher(uint256 channel,uint256 amount)``,
under the domain ``("trustmesh Channels", "1", chain id, Channels contract)``,
so that it is good for one channel on one contract on one chain. eth-account
encodes and signs it; an EOA payer's voucher is its 65-byte ECDSA signature. A
device pays with its own P-256 key (in memory, a keystore or a secure element:
any :class:`~trustmesh.identity.Signer`): its voucher is an ES256 signature
(``r ‖ s``) whose message is the 32-byte digest, what its account contract checks
through EIP-1271 (SHA-256 of the digest, then P256VERIFY).

>>> from eth_account import Account
>>> payer = Account.from_key(b"\\x01" * 32)
>>> voucher = Voucher(Domain(31337, "0x" + "11" * 20), channel=7, amount=1_000)
>>> signature = sign(voucher, payer)
>>> signer(voucher, signature) == payer.address
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sha3
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_keys.main import KeyAPI
from eth_utils.exceptions import ValidationError

from trustmesh.chain.safe import safe_message_hash
from trustmesh.errors import InvalidSignature, InvalidVoucher
from trustmesh.identity import Alg, PublicKey, Signer

__all__ = [
    "Domain",
    "SafeSigners",
    "Voucher",
    "check_device",
    "check_safe",
    "sign",
    "sign_device",
    "signer",
]

NAME, VERSION = "trustmesh Channels", "1"
TYPES = {"Voucher": [{"name": "channel", "type": "uint256"}, {"name": "amount", "type": "uint256"}]}
UINT256 = 1 << 256


def keccak256(data: bytes) -> bytes:
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


TYPEHASH = keccak256(b"Voucher(uint256 channel,uint256 amount)")


@dataclass(frozen=True)
class Domain:
    """Where vouchers are good: one Channels contract on one chain."""

    chain_id: int
    contract: str  # the Channels contract's address

    def fields(self) -> dict[str, Any]:
        return {
            "name": NAME,
            "version": VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }

    @cached_property
    def separator(self) -> bytes:
        """The EIP-712 domain separator (eth-account's, computed once)."""
        empty = {"channel": 0, "amount": 0}
        typed = encode_typed_data(
            domain_data=self.fields(), message_types=TYPES, message_data=empty
        )
        return bytes(typed.header)


@dataclass(frozen=True)
class Voucher:
    """``amount`` (cumulative, in the channel's token's smallest unit) owed on
    ``channel``."""

    domain: Domain
    channel: int
    amount: int

    def __post_init__(self) -> None:
        for name in ("channel", "amount"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < UINT256:
                raise InvalidVoucher(f"a voucher's {name} is a uint256")

    def message(self) -> SignableMessage:
        """The typed data, as eth-account encodes it (what a wallet signs)."""
        return encode_typed_data(
            domain_data=self.domain.fields(),
            message_types=TYPES,
            message_data={"channel": self.channel, "amount": self.amount},
        )

    def digest(self) -> bytes:
        """The EIP-712 digest a payer signs (the contract's ``voucher_digest``):
        ``keccak256(0x1901 ‖ domain separator ‖ keccak256(typehash ‖ channel ‖ amount))``,
        the struct's hash made here (a payee checks thousands a second; tests hold it
        to eth-account's)."""
        struct = keccak256(
            TYPEHASH + self.channel.to_bytes(32, "big") + self.amount.to_bytes(32, "big")
        )
        return keccak256(b"\x19\x01" + self.domain.separator + struct)


def sign(voucher: Voucher, payer: LocalAccount) -> bytes:
    """An EOA payer's signature of ``voucher`` (65 bytes: r, s, v)."""
    signed = payer.sign_message(voucher.message())
    return bytes(signed.signature)


def signer(voucher: Voucher, signature: bytes) -> str:
    """The address that signed ``voucher`` (an EOA's signature), checksummed;
    :class:`~trustmesh.errors.InvalidVoucher` if it is not a signature at all."""
    if type(signature) is not bytes or len(signature) != 65:
        raise InvalidVoucher("a payer's voucher signature is 65 bytes")
    return _recover(voucher.digest(), signature)


def _recover(digest: bytes, signature: bytes) -> str:
    """The address whose ECDSA signature (r, s, v) of ``digest`` this is."""
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    try:
        key = KeyAPI.Signature(signature[:64] + bytes([v])).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError, ValueError) as exc:
        raise InvalidVoucher(f"not a voucher signature: {exc}") from None
    address: str = key.to_checksum_address()
    return address


@dataclass(frozen=True)
class SafeSigners:
    """A Safe payer as its vouchers are checked off-chain: its owners and threshold
    (read from the chain when its channel is first seen)."""

    address: str
    owners: frozenset[str]  # checksummed
    threshold: int


def check_safe(voucher: Voucher, signature: bytes, safe: SafeSigners) -> None:
    """Raise :class:`~trustmesh.errors.InvalidVoucher` unless ``threshold`` of the
    Safe's owners signed the voucher as the Safe's EIP-1271 check wants it (each
    the SafeMessage hash of the voucher's digest, their signatures in ascending
    owner order): what the Channels contract will ask the Safe when it settles.
    Only owners' ECDSA signatures are checked off-chain; a contract owner's
    signature is refused here (the contract alone can check it)."""
    message = safe_message_hash(voucher.domain.chain_id, safe.address, voucher.digest())
    if type(signature) is not bytes or len(signature) < 65 * safe.threshold:
        raise InvalidVoucher(f"the Safe needs {safe.threshold} owner signatures")
    last = 0
    for k in range(safe.threshold):
        part = signature[65 * k : 65 * (k + 1)]
        if part[64] in (27, 28):
            owner = _recover(message, part)
        elif part[64] in (31, 32):  # eth_sign: the message hash, prefixed
            prefixed = keccak256(b"\x19Ethereum Signed Message:\n32" + message)
            owner = _recover(prefixed, part[:64] + bytes([part[64] - 4]))
        else:
            raise InvalidVoucher("a contract owner's signature is checked on-chain only")
        if owner not in safe.owners:
            raise InvalidVoucher(f"{owner} is not an owner of the Safe {safe.address}")
        if int(owner, 16) <= last:
            raise InvalidVoucher("the Safe's owner signatures are not in ascending owner order")
        last = int(owner, 16)


def sign_device(voucher: Voucher, device: Signer) -> bytes:
    """A device payer's signature of ``voucher``: ES256 over its digest (64 bytes)."""
    if device.public_key.alg is not Alg.ES256:
        raise InvalidVoucher("a device pays with a P-256 (ES256) key")
    return device.sign(voucher.digest())


def check_device(voucher: Voucher, signature: bytes, key: PublicKey) -> None:
    """Raise :class:`~trustmesh.errors.InvalidVoucher` unless the device with ``key``
    signed ``voucher`` (the one ES256 check every trustmesh signature goes through)."""
    if key.alg is not Alg.ES256:
        raise InvalidVoucher("a device pays with a P-256 (ES256) key")
    try:
        key.verify(voucher.digest(), signature)
    except InvalidSignature as exc:
        raise InvalidVoucher(f"the device's voucher signature: {exc}") from None
