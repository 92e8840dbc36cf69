"""The ERC-4337 bundler JSON-RPC methods over HTTP, in front of a
:class:`~trustmesh.chain.bundler.LocalBundler`: how a node on the embedded chain
bundles for its devices (``POST /bundler``), spoken to by the same client
(:class:`~trustmesh.chain.bundler.RpcBundler`) that speaks to Alto.

Methods: ``eth_sendUserOperation``, ``eth_estimateUserOperationGas``,
``eth_getUserOperationReceipt``, ``eth_supportedEntryPoints``, ``eth_chainId``.
A malformed operation is error -32602 naming the field; one the EntryPoint
refuses is -32500 with its reason (``AA24 signature error``), as ERC-7769 has
bundlers answer. Operations are handled one at a time.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eth_utils.address import to_checksum_address

from trustmesh.chain.bundler import LocalBundler
from trustmesh.chain.rpc import json_rpc_app
from trustmesh.chain.userop import UserOperation
from trustmesh.errors import ChainError, RefusedUserOperation

__all__ = ["BundlerRpc"]

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024
INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32600, -32601, -32602
REJECTED, SERVER_ERROR = -32500, -32000


class BundlerRpc:
    def __init__(self, bundler: LocalBundler) -> None:
        self.bundler = bundler
        self._lock = threading.Lock()
        self.app = json_rpc_app(self.handle, max_body=MAX_BODY, max_batch=1)

    def handle(self, item: Any) -> dict[str, Any]:  # noqa: PLR0911 - one return per outcome
        """Answer one JSON-RPC request object."""
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            return _error(None, INVALID_REQUEST, "invalid request")
        request_id, method, params = item.get("id"), item["method"], item.get("params", [])
        if not isinstance(params, list):
            return _error(request_id, INVALID_REQUEST, "params must be an array")
        try:
            with self._lock:
                result = self._call(method, params)
        except _NotFound:
            return _error(request_id, METHOD_NOT_FOUND, f"method {method} not found")
        except (ValueError, TypeError, KeyError) as exc:
            return _error(request_id, INVALID_PARAMS, str(exc))
        except RefusedUserOperation as exc:
            return _error(request_id, REJECTED, str(exc))
        except ChainError as exc:
            return _error(request_id, SERVER_ERROR, str(exc))
        except Exception:  # a bug here must not become a 500 for the client
            log.exception("bundler: %s failed", method)
            return _error(request_id, SERVER_ERROR, "internal error (logged)")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _call(self, method: str, params: list[Any]) -> Any:
        bundler = self.bundler
        if method == "eth_chainId":
            return hex(bundler.client.chain_id)
        if method == "eth_supportedEntryPoints":
            return [bundler.entry_point]
        if method == "eth_getUserOperationReceipt":
            found = bundler.receipt(_hash(params))
            if found is None:
                return None
            return {
                "userOpHash": "0x" + found.op_hash.hex(),
                "success": found.success,
                "actualGasUsed": hex(found.actual_gas_used),
                "actualGasCost": hex(found.actual_gas_cost),
                "receipt": {
                    "transactionHash": "0x" + found.transaction_hash.hex(),
                    "gasUsed": hex(found.bundle_gas_used),
                },
            }
        if method not in ("eth_sendUserOperation", "eth_estimateUserOperationGas"):
            raise _NotFound
        op = self._operation(params)
        if method == "eth_sendUserOperation":
            return "0x" + bundler.send(op).hex()
        gas = bundler.estimate(op)
        return {
            "callGasLimit": hex(gas.call_gas_limit),
            "verificationGasLimit": hex(gas.verification_gas_limit),
            "preVerificationGas": hex(gas.pre_verification_gas),
        }

    def _operation(self, params: list[Any]) -> UserOperation:
        if len(params) != 2 or not isinstance(params[0], dict) or not isinstance(params[1], str):
            raise ValueError("params must be [user operation, entry point]")
        if to_checksum_address(params[1]) != self.bundler.entry_point:
            raise ValueError(f"this bundler serves the EntryPoint {self.bundler.entry_point} only")
        return UserOperation.from_rpc(params[0])


class _NotFound(Exception):
    pass


def _hash(params: list[Any]) -> bytes:
    if len(params) != 1 or not isinstance(params[0], str) or not params[0].startswith("0x"):
        raise ValueError("params must be [user operation hash]")
    raw = bytes.fromhex(params[0][2:])
    if len(raw) != 32:
        raise ValueError("a user operation hash is 32 bytes")
    return raw


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
