"""A watcher's HTTP API: devices forward receipts, peers exchange checkpoints.

- ``POST /v1/receipts``: JSON ``{"receipts": [{"leaf_hash": hex, "proof":
  tlog-proof}, …]}`` (a node's receipt objects, as a device got them, will do);
  every receipt is checked with its log's keys before any is kept (422 names the
  first bad one and why); 202 with what is now held.
- ``GET /v1/checkpoints``: the latest checkpoint of each log this watcher was
  shown, for peers to compare with theirs.
- ``GET /v1/leaves?origin=O&size=N``: the first N leaf hashes of this
  watcher's view of log O, from which a split view is proven.
- ``GET /v1/status``: the logs followed, alerts raised, proofs submitted.
- ``GET /openapi.json``: the OpenAPI 3.1 document of all of the above.

Errors are RFC 9457 problem+json, as on nodes.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trustmesh._problems import Problem, on_http, on_problem
from trustmesh.errors import ChainError, InvalidReceipt
from trustmesh.watcher._openapi import DOCUMENT
from trustmesh.watcher.service import Watcher

MAX_BODY = 1 << 20
MAX_RECEIPTS = 1000


def create_watcher_app(watcher: Watcher) -> Starlette:
    async def post_receipts(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Problem("unsupported-media-type", "send application/json")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise Problem("oversized", f"the body is larger than {MAX_BODY} bytes")
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Problem("bad-request", "the body is not JSON") from None
        items = document.get("receipts") if isinstance(document, dict) else None
        if not isinstance(items, list) or not all(_is_receipt(item) for item in items):
            raise Problem(
                "bad-request", 'expected {"receipts": [{"leaf_hash": hex, "proof": text}, …]}'
            )
        if len(items) > MAX_RECEIPTS:
            raise Problem("oversized", f"at most {MAX_RECEIPTS} receipts per request")
        checked = []
        for position, item in enumerate(items):
            try:
                leaf = bytes.fromhex(item["leaf_hash"])
                if len(leaf) != 32:
                    raise InvalidReceipt("leaf_hash is not 32 bytes of hex")
                checked.append(watcher.check_receipt(leaf, item["proof"]))
            except (InvalidReceipt, ValueError) as exc:  # (ValueError: bad hex, lone surrogates)
                raise Problem("bad-receipt", f"receipt {position}: {exc}") from None
            except ChainError as exc:
                raise Problem("chain-unavailable", f"the registry is unreachable: {exc}") from None
        watcher.hold(checked)  # all checked first: a bad one keeps none
        held = [item.receipt for item in checked if item.receipt is not None]
        return JSONResponse(
            {"held": [{"origin": r.origin, "index": r.index, "size": r.size} for r in held]},
            202,
        )

    async def get_checkpoints(request: Request) -> Response:
        return JSONResponse(watcher.checkpoints())

    async def get_leaves(request: Request) -> Response:
        origin = request.query_params.get("origin", "")
        size = request.query_params.get("size", "")
        if not (size.isascii() and size.isdigit()) or len(size) > 19:
            raise Problem("bad-request", "size must be a non-negative integer")
        leaves = watcher.leaves(origin, int(size))
        if leaves is None:
            raise Problem("not-found", f"no view of {origin!r} with {size} leaves")
        return JSONResponse(
            {"origin": origin, "size": int(size), "leaves": [h.hex() for h in leaves]}
        )

    async def get_status(request: Request) -> Response:
        document: dict[str, Any] = {
            "logs": {o: f.audited for o, f in watcher.followers.items()},
            "alerts": watcher.alerts,
            "receipts_held": watcher.receipts_held(),
            "proofs": [p.to_json() for p in watcher.proofs],
        }
        return JSONResponse(document)

    async def get_openapi(request: Request) -> Response:
        return JSONResponse(DOCUMENT)

    def _is_receipt(item: Any) -> bool:
        return (
            isinstance(item, dict)
            and isinstance(item.get("leaf_hash"), str)
            and isinstance(item.get("proof"), str)
        )

    return Starlette(
        routes=[
            Route("/v1/receipts", post_receipts, methods=["POST"]),
            Route("/v1/checkpoints", get_checkpoints),
            Route("/v1/leaves", get_leaves),
            Route("/v1/status", get_status),
            Route("/openapi.json", get_openapi),
        ],
        exception_handlers={Problem: on_problem, HTTPException: on_http},
    )
