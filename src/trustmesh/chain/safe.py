"""Safe (1.4.1) as trustmesh meets it: the hashes a Safe's owners sign, their
signatures packed the way the Safe reads them, and a Safe transaction sent.

A Safe can own devices (it registers them and sets their prices through
``execTransaction``, so only with its threshold of owner signatures), pay over a
channel (the Channels contract checks its vouchers through EIP-1271, which a Safe
answers in its CompatibilityFallbackHandler, reverting on a bad signature), and
count a device account among its owners: Safe 1.4.1 asks a contract owner the
legacy ``isValidSignature(bytes,bytes)`` with the 66-byte EIP-712 preimage, and a
device account answers it for the device's ES256 signature of the preimage's hash.

Pure but for :class:`SafeContract`, which sends through a client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.types import TxReceipt

from trustmesh.chain.client import ChainClient

__all__ = [
    "OwnerSignature",
    "SafeContract",
    "contract_signature",
    "owner_signature",
    "pack_signatures",
    "safe_message_hash",
    "safe_tx_hash",
]

ZERO = "0x" + "00" * 20
_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)")
_SAFE_TX_TYPEHASH = keccak(
    text="SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,"
    "uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)"
)
_SAFE_MESSAGE_TYPEHASH = keccak(text="SafeMessage(bytes message)")
SIGNATURE = 65  # each owner's static part: r, s, v


def _domain(chain_id: int, safe: str) -> bytes:
    return keccak(encode(["bytes32", "uint256", "address"], [_DOMAIN_TYPEHASH, chain_id, safe]))


def safe_tx_preimage(
    chain_id: int, safe: str, to: str, value: int, data: bytes, nonce: int, operation: int = 0
) -> bytes:
    """The 66-byte EIP-712 preimage of a Safe transaction (no gas refund)."""
    struct = keccak(
        encode(
            ["bytes32", "address", "uint256", "bytes32", "uint8", "uint256", "uint256",
             "uint256", "address", "address", "uint256"],
            [_SAFE_TX_TYPEHASH, to_checksum_address(to), value, keccak(data), operation, 0, 0,
             0, ZERO, ZERO, nonce],
        )
    )  # fmt: skip
    return b"\x19\x01" + _domain(chain_id, to_checksum_address(safe)) + struct


def safe_tx_hash(
    chain_id: int, safe: str, to: str, value: int, data: bytes, nonce: int, operation: int = 0
) -> bytes:
    """What the owners sign to execute a transaction (the Safe's ``getTransactionHash``)."""
    return keccak(safe_tx_preimage(chain_id, safe, to, value, data, nonce, operation))


def safe_message_hash(chain_id: int, safe: str, digest: bytes) -> bytes:
    """What the owners sign for the Safe to accept ``digest`` through EIP-1271
    (``isValidSignature(bytes32,bytes)``: a SafeMessage whose message is the digest)."""
    struct = keccak(encode(["bytes32", "bytes32"], [_SAFE_MESSAGE_TYPEHASH, keccak(digest)]))
    return keccak(b"\x19\x01" + _domain(chain_id, to_checksum_address(safe)) + struct)


@dataclass(frozen=True)
class OwnerSignature:
    owner: str
    signature: bytes  # an EOA's 65 bytes, or what a contract owner checks
    contract: bool = False


def owner_signature(account: LocalAccount, digest: bytes) -> OwnerSignature:
    """An EOA owner's ECDSA signature of ``digest`` (v 27 or 28)."""
    signed = account.unsafe_sign_hash(Hash32(digest))
    raw = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
    return OwnerSignature(to_checksum_address(account.address), raw)


def contract_signature(owner: str, signature: bytes) -> OwnerSignature:
    """A contract owner's signature (a device account's 64-byte ES256 one)."""
    return OwnerSignature(to_checksum_address(owner), signature, contract=True)


def pack_signatures(signatures: Iterable[OwnerSignature]) -> bytes:
    """The owners' signatures as the Safe reads them: sorted by owner address, 65
    bytes each; a contract owner's as (r = owner, s = offset of its bytes, v = 0),
    its bytes (length, then the signature) after all the static parts."""
    ordered = sorted(signatures, key=lambda s: int(s.owner, 16))
    static, dynamic = b"", b""
    base = SIGNATURE * len(ordered)
    for signed in ordered:
        if not signed.contract:
            static += signed.signature
            continue
        static += int(signed.owner, 16).to_bytes(32, "big")
        static += (base + len(dynamic)).to_bytes(32, "big") + b"\x00"
        dynamic += len(signed.signature).to_bytes(32, "big") + signed.signature
    return static + dynamic


# The few functions of a Safe trustmesh calls (Safe 1.4.1's ABI).
SAFE_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "nonce", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "getThreshold", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "getOwners", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address[]"}]},
    {"type": "function", "name": "execTransaction", "stateMutability": "payable",
     "inputs": [{"name": n, "type": t} for n, t in (
         ("to", "address"), ("value", "uint256"), ("data", "bytes"), ("operation", "uint8"),
         ("safeTxGas", "uint256"), ("baseGas", "uint256"), ("gasPrice", "uint256"),
         ("gasToken", "address"), ("refundReceiver", "address"), ("signatures", "bytes"))],
     "outputs": [{"name": "success", "type": "bool"}]},
]  # fmt: skip


class SafeContract:
    """One Safe, its transactions sent from ``client``'s account (anyone may relay)."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = to_checksum_address(address)
        self.contract = client.w3.eth.contract(address=self.address, abi=SAFE_ABI)

    def nonce(self) -> int:
        return int(self.client.call(self.contract.functions.nonce()))

    def tx_hash(self, to: str, value: int, data: bytes) -> bytes:
        """The hash the owners sign for the next transaction."""
        return safe_tx_hash(self.client.chain_id, self.address, to, value, data, self.nonce())

    def execute(
        self, to: str, value: int, data: bytes, signatures: Iterable[OwnerSignature]
    ) -> TxReceipt:
        """Execute a call the owners signed (Reverted with GS0xx if they fall short)."""
        fn = self.contract.functions.execTransaction(
            to_checksum_address(to), value, data, 0, 0, 0, 0, ZERO, ZERO,
            pack_signatures(signatures),
        )  # fmt: skip
        return self.client.transact(fn)
