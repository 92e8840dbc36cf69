"""Standard Ethereum JSON-RPC over HTTP for the embedded chain.

``trustmesh chain serve`` puts this in front of an :class:`EmbeddedChain`, so
that several processes (nodes, watchers, wallets, foundry's ``cast``) share
one local chain exactly as they would share a real one. Requests are served
one at a time (the chain has one writer); results are encoded the JSON-RPC
way (quantities as hex), reverts as error code 3 with the reason and its
``Error(string)`` data, as geth and anvil answer them. Development helpers
``evm_mine`` and ``evm_increaseTime`` are there too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from web3.exceptions import ContractLogicError, Web3Exception

from trustmesh.chain.embedded import EmbeddedChain

MAX_BODY = 4 * 1024 * 1024
MAX_BATCH = 100
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, SERVER_ERROR, REVERTED = (
    -32700,
    -32600,
    -32601,
    -32000,
    3,
)


def to_rpc(value: Any) -> Any:
    """A web3 result in JSON-RPC form: integers as hex quantities, bytes as hex data."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_rpc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_rpc(v) for v in value]
    return str(value)


def json_rpc_app(
    handle: Callable[[Any], dict[str, Any]], max_body: int = MAX_BODY, max_batch: int = MAX_BATCH
) -> Starlette:
    """An ASGI app taking JSON-RPC requests (and batches) by POST at its root, each
    answered by ``handle`` in a worker thread."""

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > max_body:
            return JSONResponse(_error(None, INVALID_REQUEST, "request too large"), status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse(_error(None, PARSE_ERROR, "parse error"))
        if isinstance(payload, list):
            if not payload or len(payload) > max_batch:
                return JSONResponse(_error(None, INVALID_REQUEST, "empty or oversized batch"))
            return JSONResponse([await run_in_threadpool(handle, item) for item in payload])
        return JSONResponse(await run_in_threadpool(handle, payload))

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


class RpcServer:
    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        self._lock = threading.Lock()
        self.app = json_rpc_app(self.handle)

    def handle(self, item: Any) -> dict[str, Any]:  # noqa: PLR0911 - one return per JSON-RPC outcome
        """Answer one JSON-RPC request object."""
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            return _error(None, INVALID_REQUEST, "invalid request")
        request_id = item.get("id")
        method: str = item["method"]
        params = item.get("params", [])
        if not isinstance(params, list):
            return _error(request_id, INVALID_REQUEST, "params must be an array")
        if not method.startswith(("eth_", "net_", "web3_", "evm_")):
            return _error(request_id, METHOD_NOT_FOUND, f"method {method} not found")
        with self._lock:
            try:
                result = self._call(method, params)
            except (TransactionFailed, ContractLogicError) as exc:
                return _revert(request_id, exc)
            except (Web3Exception, ValueError, TypeError, KeyError, AttributeError) as exc:
                return _error(request_id, SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            except NotImplementedError:
                return _error(request_id, METHOD_NOT_FOUND, f"method {method} not supported")
        return {"jsonrpc": "2.0", "id": request_id, "result": to_rpc(result)}

    def _call(self, method: str, params: list[Any]) -> Any:
        if method == "evm_mine":
            self.chain.tester.mine_blocks()
            return "0x0"
        if method == "evm_increaseTime":
            self.chain.advance_time(
                int(params[0], 16) if isinstance(params[0], str) else int(params[0])
            )
            return 0
        return self.chain.w3.manager.request_blocking(method, params)  # type: ignore[arg-type]


def _error(request_id: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _revert(request_id: Any, exc: Exception) -> dict[str, Any]:
    reason = str(getattr(exc, "message", None) or exc).removeprefix("execution reverted: ")
    data = "0x" + (ERROR_SELECTOR + abi_encode(["string"], [reason])).hex()
    return _error(request_id, REVERTED, f"execution reverted: {reason}", data)
