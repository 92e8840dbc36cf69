"""ERC-4337 user operations (EntryPoint v0.8): the fields, their packed form
for ``handleOps``, the hash an account's key signs, and the JSON-RPC form
bundlers take (pure: values in, bytes out).

v0.8 signs the EIP-712 hash of ``PackedUserOperation`` under the domain
("ERC4337", "1", chain id, EntryPoint) with no "Ethereum Signed Message"
prefix; a test holds :meth:`UserOperation.hash` equal to the EntryPoint's own
``getUserOpHash``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

__all__ = ["UserOperation"]

_TYPEHASH = keccak(
    b"PackedUserOperation(address sender,uint256 nonce,bytes initCode,bytes callData,"
    b"bytes32 accountGasLimits,uint256 preVerificationGas,bytes32 gasFees,"
    b"bytes paymasterAndData)"
)
_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


def _pair(high: int, low: int) -> bytes:
    """Two uint128 in one bytes32, as v0.8 packs gas limits and fees."""
    for value in (high, low):
        if not 0 <= value < 1 << 128:
            raise ValueError(f"{value} does not fit in 128 bits")
    return high.to_bytes(16, "big") + low.to_bytes(16, "big")


@dataclass(frozen=True)
class UserOperation:
    """One user operation (no paymaster: the account pays for itself)."""

    sender: str
    nonce: int
    call_data: bytes
    call_gas_limit: int
    verification_gas_limit: int
    pre_verification_gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    factory: str | None = None  # set when this operation deploys the account
    factory_data: bytes = b""
    signature: bytes = b""

    def init_code(self) -> bytes:
        if self.factory is None:
            return b""
        return bytes.fromhex(self.factory[2:]) + self.factory_data

    def packed(self) -> tuple[Any, ...]:
        """The ``PackedUserOperation`` tuple ``handleOps`` takes."""
        return (
            to_checksum_address(self.sender),
            self.nonce,
            self.init_code(),
            self.call_data,
            _pair(self.verification_gas_limit, self.call_gas_limit),
            self.pre_verification_gas,
            _pair(self.max_priority_fee_per_gas, self.max_fee_per_gas),
            b"",
            self.signature,
        )

    def hash(self, entry_point: str, chain_id: int) -> bytes:
        """What the account's key signs: v0.8's EIP-712 hash of the operation."""
        sender, nonce, init_code, call_data, limits, pre, fees, paymaster, _ = self.packed()
        struct = keccak(
            encode(
                ["bytes32", "address", "uint256", "bytes32", "bytes32", "bytes32", "uint256",
                 "bytes32", "bytes32"],
                [_TYPEHASH, sender, nonce, keccak(init_code), keccak(call_data), limits, pre,
                 fees, keccak(paymaster)],
            )
        )  # fmt: skip
        domain = keccak(
            encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [_DOMAIN_TYPEHASH, keccak(b"ERC4337"), keccak(b"1"), chain_id,
                 to_checksum_address(entry_point)],
            )
        )  # fmt: skip
        return keccak(b"\x19\x01" + domain + struct)

    def signed(self, signature: bytes) -> UserOperation:
        return replace(self, signature=signature)

    def rpc(self) -> dict[str, str]:
        """The operation as ``eth_sendUserOperation`` takes it (v0.7+ fields)."""
        fields = {
            "sender": to_checksum_address(self.sender),
            "nonce": hex(self.nonce),
            "callData": "0x" + self.call_data.hex(),
            "callGasLimit": hex(self.call_gas_limit),
            "verificationGasLimit": hex(self.verification_gas_limit),
            "preVerificationGas": hex(self.pre_verification_gas),
            "maxFeePerGas": hex(self.max_fee_per_gas),
            "maxPriorityFeePerGas": hex(self.max_priority_fee_per_gas),
            "signature": "0x" + self.signature.hex(),
        }
        if self.factory is not None:
            fields["factory"] = to_checksum_address(self.factory)
            fields["factoryData"] = "0x" + self.factory_data.hex()
        return fields

    @classmethod
    def from_rpc(cls, fields: dict[str, Any]) -> UserOperation:
        """Parse the JSON-RPC form; raises ValueError (naming the field) if malformed."""

        def number(name: str) -> int:
            value = fields.get(name)
            if not isinstance(value, str) or not value.startswith("0x"):
                raise ValueError(f"user operation: {name} must be a 0x-hex quantity")
            return int(value, 16)

        def data(name: str, default: str | None = None) -> bytes:
            value = fields.get(name, default)
            if not isinstance(value, str) or not value.startswith("0x"):
                raise ValueError(f"user operation: {name} must be 0x-hex bytes")
            return bytes.fromhex(value[2:])

        sender = fields.get("sender")
        factory = fields.get("factory")
        if not isinstance(sender, str) or len(data("sender")) != 20:
            raise ValueError("user operation: sender must be an address")
        if factory is not None and (not isinstance(factory, str) or len(data("factory")) != 20):
            raise ValueError("user operation: factory must be an address")
        if fields.get("paymaster") not in (None, "0x", "0x" + "00" * 20):
            raise ValueError("user operation: paymasters are not supported here")
        return cls(
            sender=to_checksum_address(sender),
            nonce=number("nonce"),
            call_data=data("callData"),
            call_gas_limit=number("callGasLimit"),
            verification_gas_limit=number("verificationGasLimit"),
            pre_verification_gas=number("preVerificationGas"),
            max_fee_per_gas=number("maxFeePerGas"),
            max_priority_fee_per_gas=number("maxPriorityFeePerGas"),
            factory=to_checksum_address(factory) if factory else None,
            factory_data=data("factoryData", "0x") if factory else b"",
            signature=data("signature"),
        )
