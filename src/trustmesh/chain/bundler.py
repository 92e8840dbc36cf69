"""Getting user operations on-chain: any ERC-4337 bundler over JSON-RPC, or
the node's own bundler where a chain has none.

:class:`RpcBundler` speaks the bundler JSON-RPC methods (``eth_sendUserOperation``,
``eth_estimateUserOperationGas``, ``eth_getUserOperationReceipt``) to any bundler:
Pimlico's Alto in front of anvil, or a trustmesh node (``POST /v1/bundler``).
:class:`LocalBundler` is what the node runs for its devices on the embedded
chain: it simulates each operation through the EntryPoint (a refusal comes back
with the EntryPoint's reason, ``AA24 signature error`` and the like, and costs
nobody anything), then sends ``handleOps`` from the node's account, which the
operation's gas payment reimburses. A device's wallet uses either through the
same :class:`Bundler` interface.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx
from eth_abi.abi import decode, encode
from eth_tester.exceptions import TransactionFailed
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, Wei

from trustmesh.chain.client import ChainClient
from trustmesh.chain.entrypoint import ENTRY_POINT, entry_point_artifact
from trustmesh.chain.userop import UserOperation
from trustmesh.errors import ChainError, RefusedUserOperation

__all__ = [
    "Bundler",
    "GasEstimate",
    "LocalBundler",
    "OpReceipt",
    "RpcBundler",
]

# What a bundle costs outside the operations' own measured gas: the transaction's
# 21,000, the EntryPoint's own bookkeeping, and the operation's calldata.
_BUNDLE_OVERHEAD = 21_000 + 12_000
_VERIFICATION_GAS = 60_000  # a deployed device account validates in ~15k
_DEPLOYMENT_GAS = 200_000  # the factory's proxy: ~82k
_DEFAULT_CALL_GAS = 100_000
_CALL_MARGIN = 10_000
# The account's own work around an `execute` call: decoding it, a value-bearing
# CALL (9,000), a cold target (2,600).
_EXECUTE_OVERHEAD = 15_000
_NEW_ACCOUNT = 25_000  # what a value-bearing CALL to an empty account adds
_EXECUTE = function_signature_to_4byte_selector("execute(address,uint256,bytes)")
_OPERATION_EVENT = (
    "0x" + keccak(b"UserOperationEvent(bytes32,address,address,uint256,bool,uint256,uint256)").hex()
)
_FAILED_OP = function_signature_to_4byte_selector("FailedOp(uint256,string)")
_FAILED_OP_WITH_REVERT = function_signature_to_4byte_selector(
    "FailedOpWithRevert(uint256,string,bytes)"
)


@dataclass(frozen=True)
class GasEstimate:
    call_gas_limit: int
    verification_gas_limit: int
    pre_verification_gas: int


@dataclass(frozen=True)
class OpReceipt:
    """A user operation once mined: whether its call succeeded, what it cost."""

    op_hash: bytes
    success: bool
    actual_gas_used: int  # what the account paid for, as the EntryPoint counts it
    actual_gas_cost: int  # in wei
    transaction_hash: bytes
    bundle_gas_used: int  # the whole handleOps transaction's gas


class Bundler(Protocol):
    entry_point: str

    def estimate(self, op: UserOperation) -> GasEstimate: ...

    def send(self, op: UserOperation) -> bytes:
        """Submit a signed operation; returns its hash, or raises RefusedUserOperation."""
        ...

    def receipt(self, op_hash: bytes) -> OpReceipt | None: ...


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas: 16 per non-zero byte, 4 per zero byte."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


class LocalBundler:
    """Bundles each operation alone in a ``handleOps`` sent from ``client``'s account."""

    def __init__(self, client: ChainClient, entry_point: str = ENTRY_POINT) -> None:
        self.client = client
        self.entry_point: str = to_checksum_address(entry_point)
        self.contract = client.contract(entry_point_artifact(), self.entry_point)

    def estimate(self, op: UserOperation) -> GasEstimate:
        """Gas for ``op``: its call estimated as the EntryPoint will make it (or, for
        an account not deployed yet, the call its ``execute`` will make, from the
        account's address), validation and deployment from measured bounds."""
        with self.client.errors("estimating a user operation"):
            deployed = bool(self.client.w3.eth.get_code(to_checksum_address(op.sender)))
        call_gas = 0
        if deployed and op.call_data:
            call_gas = self._call_gas(self.entry_point, op.sender, 0, op.call_data)
        elif op.call_data[:4] == _EXECUTE:
            target, amount, data = decode(["address", "uint256", "bytes"], op.call_data[4:])
            call_gas = self._call_gas(op.sender, target, amount, data) + _EXECUTE_OVERHEAD
            call_gas += _NEW_ACCOUNT if amount else 0  # (a transaction never pays it)
        elif op.call_data:
            call_gas = _DEFAULT_CALL_GAS
        verification = _VERIFICATION_GAS + (0 if deployed else _DEPLOYMENT_GAS)
        return GasEstimate(call_gas, verification, self.pre_verification_gas(op))

    def _call_gas(self, sender: str, to: str, value: int, data: bytes) -> int:
        """A call's execution gas: its estimate less the transaction's intrinsic
        part, with a margin. (Gas price zero: what the sender holds is no limit.)"""
        call: TxParams = {
            "from": to_checksum_address(sender), "to": to_checksum_address(to),
            "value": Wei(value), "data": data, "gasPrice": Wei(0),
        }  # fmt: skip
        try:
            estimated = int(self.client.w3.eth.estimate_gas(call))
        except (ContractLogicError, ContractCustomError, TransactionFailed, ValueError) as exc:
            raise RefusedUserOperation(f"the operation's call reverts: {_failure(exc)}") from None
        except ValidationError as exc:  # (py-evm: the account cannot pay the call's value)
            raise RefusedUserOperation(f"the operation's call cannot run: {exc}") from None
        return estimated - 21_000 - calldata_gas(data) + _CALL_MARGIN

    @staticmethod
    def pre_verification_gas(op: UserOperation) -> int:
        """What the bundle transaction spends on this operation outside its execution:
        the operation's calldata and the overhead. It is the same before and after the
        estimate fills the gas fields in: they count as 3 non-zero bytes each (limits
        below 2^24) and the fees as 5 (below 2^40 wei), a signature as 64 bytes."""
        big = (1 << 24) - 1
        sized = replace(
            op,
            call_gas_limit=max(op.call_gas_limit, big),
            verification_gas_limit=max(op.verification_gas_limit, big),
            pre_verification_gas=max(op.pre_verification_gas, big),
            max_fee_per_gas=max(op.max_fee_per_gas, (1 << 40) - 1),
            max_priority_fee_per_gas=max(op.max_priority_fee_per_gas, (1 << 40) - 1),
            signature=b"\x01" * max(64, len(op.signature)),
        )
        data = encode(
            ["(address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes)[]", "address"],
            [[sized.packed()], "0x" + "11" * 20],
        )
        return _BUNDLE_OVERHEAD + calldata_gas(data)

    def send(self, op: UserOperation) -> bytes:
        with self.client.errors("reading the gas price"):
            price = int(self.client.w3.eth.gas_price)
        if op.max_fee_per_gas < price or op.max_priority_fee_per_gas == 0:
            raise RefusedUserOperation(
                f"maxFeePerGas {op.max_fee_per_gas} is below the gas price {price}, or it "
                "offers no priority fee: the bundler would pay for it"
            )
        if op.pre_verification_gas < self.pre_verification_gas(op):
            raise RefusedUserOperation(
                f"preVerificationGas {op.pre_verification_gas} is below the "
                f"{self.pre_verification_gas(op)} this bundler needs"
            )
        handle = self.contract.functions.handleOps([op.packed()], self.client.address)
        try:  # simulate first: a refused operation costs nobody anything
            handle.call({"from": self.client.address})
        except (ContractCustomError, ContractLogicError, TransactionFailed) as exc:
            raise RefusedUserOperation(_failure(exc)) from None
        except ValueError as exc:
            raise RefusedUserOperation(str(exc)) from None
        self.client.transact(handle)
        return op.hash(self.entry_point, self.client.chain_id)

    def receipt(self, op_hash: bytes) -> OpReceipt | None:
        w3 = self.client.w3
        with self.client.errors("reading a user operation's receipt"):
            logs = w3.eth.get_logs(
                {
                    "address": to_checksum_address(self.entry_point),
                    "fromBlock": 0,
                    "toBlock": "latest",
                    "topics": [_OPERATION_EVENT, "0x" + op_hash.hex()],
                }
            )
            if not logs:
                return None
            log = logs[-1]
            bundle = w3.eth.get_transaction_receipt(log["transactionHash"])
        _, success, cost, used = decode(["uint256", "bool", "uint256", "uint256"], log["data"])
        return OpReceipt(
            op_hash, bool(success), int(used), int(cost), bytes(log["transactionHash"]),
            int(bundle["gasUsed"]),
        )  # fmt: skip


def _revert_data(exc: BaseException) -> bytes:
    """The raw revert data behind a failed call: web3 keeps it as ``data``; the
    embedded chain's provider keeps it on the exception it re-raised from."""
    seen: BaseException | None = exc
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        seen = seen.__context__
    return b""


def _failure(exc: Exception) -> str:
    """The EntryPoint's reason from a FailedOp / FailedOpWithRevert, else the message."""
    raw = _revert_data(exc)
    if raw[:4] == _FAILED_OP:
        _, reason = decode(["uint256", "string"], raw[4:])
        return str(reason)
    if raw[:4] == _FAILED_OP_WITH_REVERT:
        _, reason, inner = decode(["uint256", "string", "bytes"], raw[4:])
        return f"{reason} {inner.hex()}" if inner else str(reason)
    return str(getattr(exc, "message", None) or exc)


class RpcBundler:
    """An ERC-4337 bundler reached over JSON-RPC (Alto, or a trustmesh node)."""

    def __init__(self, url: str, entry_point: str = ENTRY_POINT, timeout: float = 30.0) -> None:
        self.url = url
        self.entry_point: str = to_checksum_address(entry_point)
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)
        self._id = 0

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        try:
            response = self._http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ChainError(f"bundler {self.url}: unreachable ({type(exc).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            raise ChainError(
                f"bundler {self.url}: HTTP {response.status_code}, not a JSON-RPC answer"
            ) from None
        if not isinstance(answer, dict):
            raise ChainError(f"bundler {self.url}: not a JSON-RPC answer")
        if "error" in answer:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise RefusedUserOperation(f"{method}: {message}")
        return answer.get("result")

    def estimate(self, op: UserOperation) -> GasEstimate:
        result = self._call("eth_estimateUserOperationGas", op.rpc(), self.entry_point)
        try:
            return GasEstimate(
                int(result["callGasLimit"], 16),
                int(result["verificationGasLimit"], 16),
                int(result["preVerificationGas"], 16),
            )
        except (KeyError, TypeError, ValueError):
            raise ChainError(f"bundler {self.url}: a malformed gas estimate") from None

    def send(self, op: UserOperation) -> bytes:
        result = self._call("eth_sendUserOperation", op.rpc(), self.entry_point)
        try:
            return bytes.fromhex(str(result).removeprefix("0x"))
        except ValueError:
            raise ChainError(f"bundler {self.url}: a malformed operation hash") from None

    def receipt(self, op_hash: bytes) -> OpReceipt | None:
        result = self._call("eth_getUserOperationReceipt", "0x" + op_hash.hex())
        if result is None:
            return None
        try:
            bundle = result["receipt"]
            return OpReceipt(
                op_hash,
                bool(result["success"]),
                int(result["actualGasUsed"], 16),
                int(result["actualGasCost"], 16),
                bytes.fromhex(bundle["transactionHash"][2:]),
                int(bundle["gasUsed"], 16),
            )
        except (KeyError, TypeError, ValueError):
            raise ChainError(f"bundler {self.url}: a malformed receipt") from None
