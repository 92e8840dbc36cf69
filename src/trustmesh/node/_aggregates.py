"""Claim data a node keeps for anyone to check: ``POST /v1/aggregates`` takes a
claim's published data (CBOR, :func:`trustmesh.aggregate.claim.encode`), checks
that it is a claim's, and keeps it under the claim's id; ``GET
/v1/aggregates/{id}`` serves it back (the path the POST answers), so a claim
posted with the node's URL and that path has its data where watchers look. A
node keeps data it is given; it vouches for none."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trustmesh._durable import replace_atomically
from trustmesh._problems import Problem
from trustmesh.aggregate.claim import decode
from trustmesh.errors import InvalidAggregate
from trustmesh.node._body import read_limited

CBOR = "application/cbor"
MAX_CLAIM_DATA = 64 * 1024 * 1024
CLAIM_ID = 64  # hex digits


class ClaimShelf:
    def __init__(self, directory: Path, body_timeout: float) -> None:
        self.directory = directory
        self.body_timeout = body_timeout

    def routes(self) -> list[Route]:
        return [
            Route("/v1/aggregates", self.put, methods=["POST"]),
            Route("/v1/aggregates/{claim_id}", self.get),
        ]

    def _path(self, claim_id: str) -> Path:
        if len(claim_id) != CLAIM_ID or any(c not in "0123456789abcdef" for c in claim_id):
            raise Problem("bad-request", "a claim id is 64 lowercase hex digits")
        return self.directory / f"{claim_id}.cbor"

    async def put(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != CBOR:
            raise Problem("unsupported-media-type", f"send a claim's data as {CBOR}")
        data = await read_limited(request, MAX_CLAIM_DATA, self.body_timeout)
        try:
            claim = await asyncio.to_thread(decode, data)
        except InvalidAggregate as exc:
            raise Problem("bad-request", str(exc)) from None
        claim_id = claim.id.hex()
        path = self._path(claim_id)
        await asyncio.to_thread(self._keep, path, data)
        return JSONResponse({"claim_id": "0x" + claim_id, "path": f"/v1/aggregates/{claim_id}",
                             "root": "0x" + claim.root.hex(), "result": claim.result,
                             "count": claim.count}, status_code=201)  # fmt: skip

    def _keep(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_atomically(path, data, 0o644)

    async def get(self, request: Request) -> Response:
        path = self._path(str(request.path_params["claim_id"]).removeprefix("0x"))
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise Problem("not-found", "no data kept for that claim") from None
        return Response(data, media_type=CBOR, headers={"cache-control": "public, max-age=3600"})
