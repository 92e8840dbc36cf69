"""The node's HTTP API (an ASGI app): readings in, receipts, proofs, tiles out.

Routes and formats are those of DESIGN.md; every refusal is RFC 9457
problem+json with a stable ``type``, and nothing a client sends yields a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from trustmesh._problems import Problem, on_http, on_problem, problem_response
from trustmesh.bundle import make_bundle
from trustmesh.chain.suite import Registry
from trustmesh.errors import ChainError, InvalidDid, StoreError
from trustmesh.identity import key_from_did
from trustmesh.log.bundles import decode_bundle, encode_bundle
from trustmesh.log.store import LogStore
from trustmesh.log.tlog_proof import format_tlog_proof
from trustmesh.node._anchorer import Anchorer
from trustmesh.node._body import read_limited
from trustmesh.node._cborseq import split_cbor_sequence
from trustmesh.node._dashboard import Dashboard
from trustmesh.node._ingest import Accepted, Ingestor
from trustmesh.node._market import Market, Sale
from trustmesh.node._metrics import Metrics
from trustmesh.node._openapi import DOCUMENT
from trustmesh.node._reputation import ReputationKeeper
from trustmesh.node._state import NodeState
from trustmesh.reading import MAX_ENTRY_SIZE
from trustmesh.reputation import ONE, ReputationTable
from trustmesh.reputation.publish import published
from trustmesh.reputation.witness import subject_id

log = logging.getLogger("trustmesh.node.http")

COSE = "application/cose"
CBOR_SEQ = "application/cbor-seq"
MAX_SEQ_BODY = 1024 * 1024
BODY_TIMEOUT = 30.0
IMMUTABLE = "public, max-age=31536000, immutable"
HEX_ID = re.compile(r"^[0-9a-f]{64}$")
TILE_PATH = re.compile(
    r"^(?:(?P<level>\d{1,2})|entries)/(?P<index>(?:x\d{3}/)*\d{3})(?:\.p/(?P<width>\d{1,3}))?$"
)


@dataclass
class NodeContext:
    """What the routes need; built by :mod:`trustmesh.node.run`."""

    store: LogStore
    ingestor: Ingestor
    anchorer: Anchorer
    registry: Registry
    state: NodeState
    metrics: Metrics
    info: dict[str, Any]  # origin, verifier_key, epoch_seconds, chain_id, contracts
    reputation: ReputationKeeper | None = None
    market: Market | None = None  # sells priced devices' readings (HTTP 402)
    extra_routes: list[Any] = field(default_factory=list)
    fund_registrations: bool = False  # embedded chain only: the node pays new devices' stakes
    body_timeout: float = BODY_TIMEOUT  # seconds a client has to send a whole body
    mesh: Any = None  # the node's MeshPeer, if it is on the mesh


def build_bundles(ctx: NodeContext, indices: list[int]) -> tuple[str, list[dict[str, Any]]]:
    """The latest signed checkpoint, and the proof bundle of each of ``indices`` it
    covers (its receipt in that checkpoint; the anchor, with its consistency proof)."""
    signed = ctx.ingestor.latest.get()
    anchored_size, anchored_root = ctx.anchorer.anchored
    anchor = None
    if 0 < anchored_size <= signed.size:
        anchor = {
            "chain_id": ctx.info["chain_id"],
            "log_anchor": ctx.info["contracts"].get("LogAnchor"),
            "size": anchored_size,
            "root": anchored_root,
            "consistency": ctx.store.consistency_proof(anchored_size, signed.size),
        }
    bundles = [
        make_bundle(
            origin=ctx.ingestor.origin,
            verifier_key=ctx.info["verifier_key"],
            entry=ctx.store.entry(index),
            proof=format_tlog_proof(
                index, ctx.store.inclusion_proof(index, signed.size), signed.note
            ),
            anchor=anchor,
        )
        for index in indices
        if index < signed.size  # not yet in a signed checkpoint: no bundle yet
    ]
    return signed.note, bundles


def create_app(ctx: NodeContext, lifespan: Any = None) -> Starlette:  # noqa: PLR0915 - the routes
    async def read_body(request: Request, limit: int) -> bytes:
        return await read_limited(request, limit, ctx.body_timeout)

    async def post_readings(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in (COSE, CBOR_SEQ):
            raise Problem(
                "unsupported-media-type", f"send {COSE} or {CBOR_SEQ}, not {media or 'nothing'}"
            )
        if media == COSE:
            body = await read_body(request, MAX_ENTRY_SIZE + 1)  # + the optional tag byte
            accepted = await ctx.ingestor.submit(body)
            return _json_response(accepted.to_json(ctx.ingestor.origin))
        body = await read_body(request, MAX_SEQ_BODY)
        items, decoded = split_cbor_sequence(body)
        outcomes = await ctx.ingestor.submit_many(items, decoded)
        return _json_response([_outcome(o, ctx.ingestor.origin) for o in outcomes])

    async def get_log(request: Request) -> Response:
        anchored_size, anchored_root = ctx.anchorer.anchored
        return JSONResponse(
            {
                **ctx.info,
                "size": ctx.store.size,
                "anchored": {"size": anchored_size, "root": anchored_root.hex()},
            }
        )

    async def get_checkpoint(request: Request) -> Response:
        return PlainTextResponse(
            ctx.ingestor.latest.get().note,
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-cache, max-age=2"},
        )

    async def get_entry(request: Request) -> Response:
        index = _int(request.path_params["index"], "index")
        if index >= ctx.store.size:
            raise Problem("not-found", f"no entry {index}: the log has {ctx.store.size}")
        return Response(
            ctx.store.entry(index), media_type=COSE, headers={"Cache-Control": IMMUTABLE}
        )

    async def get_inclusion(request: Request) -> Response:
        index = _int(request.query_params.get("index"), "index")
        size = _int(request.query_params.get("size"), "size")
        if not index < size:
            raise Problem("bad-request", "index must be below size")
        if size > ctx.store.size:
            raise Problem("not-found", f"the log has only {ctx.store.size} entries")
        hashes = ctx.store.inclusion_proof(index, size)
        return JSONResponse({"index": index, "size": size, "hashes": [h.hex() for h in hashes]})

    async def get_consistency(request: Request) -> Response:
        old = _int(request.query_params.get("from"), "from")
        new = _int(request.query_params.get("to"), "to")
        if old > new:
            raise Problem("bad-request", "from must not exceed to")
        if new > ctx.store.size:
            raise Problem("not-found", f"the log has only {ctx.store.size} entries")
        hashes = ctx.store.consistency_proof(old, new)
        return JSONResponse({"from": old, "to": new, "hashes": [h.hex() for h in hashes]})

    async def get_device(request: Request) -> Response:
        did = _did(request.path_params["did"])
        record = await asyncio.to_thread(ctx.registry.device, did)
        if record["status"] == "unknown":
            raise Problem("not-found", f"{did} is not registered")
        found = ctx.reputation.latest_row(did) if ctx.reputation is not None else None
        return JSONResponse(
            {
                **record,
                "last_seq": ctx.store.last_seq(did),
                "reputation": None if found is None else found[1].score / ONE,
            }
        )

    async def get_device_readings(request: Request) -> Response:
        did = _did(request.path_params["did"])
        limit = min(_int(request.query_params.get("limit", "100"), "limit"), 1000)
        if "seq" in request.query_params:
            index = ctx.store.find(did, _int(request.query_params["seq"], "seq"))
            found = [] if index is None else [index]
        else:
            found = [index for _, index in ctx.store.device_entries(did, limit)]
        sale = await _sale(did, len(found))
        if sale is None:
            note, bundles = build_bundles(ctx, found)
            return JSONResponse({"did": did, "checkpoint": note, "readings": bundles})
        assert ctx.market is not None
        refused, verified = await ctx.market.charge(request, sale)
        if refused is not None:
            return refused
        note, bundles = build_bundles(ctx, found)
        status, headers = await ctx.market.settle_headers(verified)
        if status != 200:  # the payment could not be kept: nothing is served
            return JSONResponse({}, status, headers)
        document = {"did": did, "checkpoint": note, "readings": bundles}
        return JSONResponse(document, headers={**headers, "Cache-Control": "private"})

    async def get_channel(request: Request) -> Response:
        """What this node holds of a payment channel: the best voucher it accepted
        (a buyer resumes from it) and what it settled."""
        if ctx.market is None:
            raise Problem("not-implemented", "this node sells nothing")
        channel = _int(request.path_params["channel"], "channel")
        return JSONResponse({"channel": channel, **ctx.market.held(channel)})

    async def _sale(did: str, readings: int) -> Sale | None:
        if ctx.market is None or readings == 0:
            return None
        try:
            return await asyncio.to_thread(ctx.market.sale, did, readings)
        except ChainError as exc:
            raise Problem(
                "chain-unavailable", f"the device's price cannot be read: {exc}"
            ) from None

    async def get_evidence(request: Request) -> Response:
        after = _int(request.query_params.get("after", "0"), "after")
        items = [{"id": i, **e.to_json()} for i, e in ctx.state.evidence(after_id=after)]
        return JSONResponse({"origin": ctx.ingestor.origin, "evidence": items})

    def reputation() -> ReputationKeeper:
        if ctx.reputation is None:
            raise Problem("not-implemented", "this node keeps no reputation tables")
        return ctx.reputation

    async def get_reputation_epochs(request: Request) -> Response:
        keeper = reputation()
        cuts = await asyncio.to_thread(keeper.cuts)
        epochs = []
        for cut in cuts:
            kept = keeper.epoch(cut.epoch)
            epochs.append({**cut.to_json(), **(table_summary(kept[1]) if kept else {})})
        return JSONResponse({"epoch_seconds": keeper.epoch_ms / 1000, "epochs": epochs})

    async def get_reputation_table(request: Request) -> Response:
        found = reputation().epoch(_int(request.path_params["epoch"], "epoch"))
        if found is None:
            raise Problem("not-found", "no table of that epoch is kept here")
        cut, table = found
        document = await asyncio.to_thread(published, table)
        return JSONResponse({"cut": cut.to_json(), **document})

    async def get_reputation(request: Request) -> Response:
        keeper = reputation()
        text = request.path_params["id"]
        subject = bytes.fromhex(text) if HEX_ID.match(text) else subject_id(_did(text))
        if "epoch" in request.query_params:
            found = keeper.epoch(_int(request.query_params["epoch"], "epoch"))
        else:
            found = keeper.latest()
        if found is None:
            raise Problem("not-found", "no reputation table for that epoch (yet)")
        cut, table = found
        row = table.rows.get(subject)
        if row is None:
            raise Problem("not-found", f"{text} has no score in epoch {table.epoch}")
        try:
            posted = await asyncio.to_thread(keeper.posted, table.epoch)
        except ChainError as exc:
            posted = {"error": f"the chain could not be read: {exc}"}
        return JSONResponse(
            {
                "id": subject.hex(),
                "did": None if HEX_ID.match(text) else text,
                "epoch": table.epoch,
                "score": row.score,
                "score_fraction": row.score / ONE,
                "cut": cut.to_json(),
                **table_summary(table),
                "proof": [h.hex() for h in table.score_proof(subject)],
                "posted": posted,
                "explanation": row.explain(),
            }
        )

    async def get_tile(request: Request) -> Response:
        match = TILE_PATH.match(request.path_params["path"])
        if match is None:
            raise Problem("not-found", "not a tile path")
        index = int(match["index"].replace("x", "").replace("/", ""))
        width = int(match["width"]) if match["width"] else 256
        if not 1 <= width <= 256 or (match["width"] and width == 256):
            raise Problem("not-found", "a partial tile is 1 to 255 wide")
        if match["level"] is None:
            data = ctx.store.bundle(index)
            entries = _bundle_prefix(data, width) if data is not None else None
            if entries is None:
                raise Problem("not-found", "no such entry bundle")
            return Response(
                entries, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
            )
        tile = ctx.store.tile(int(match["level"]), index)
        if tile is None or len(tile) < width * 32:
            raise Problem("not-found", "no such tile")
        return Response(
            tile[: width * 32],
            media_type="application/octet-stream",
            headers={"Cache-Control": IMMUTABLE},
        )

    async def get_metrics(request: Request) -> Response:
        ctx.metrics.tree_size.set(ctx.store.size)
        ctx.metrics.queue_depth.set(ctx.ingestor.queue_depth)
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def get_openapi(request: Request) -> Response:
        return JSONResponse(DOCUMENT)

    async def post_device(request: Request) -> Response:
        if not ctx.fund_registrations:
            raise Problem(
                "not-found", "this node does not register devices; send the transaction yourself"
            )
        body = await read_body(request, 4096)
        try:
            document = json.loads(body)
            did = _did(str(document["did"]))
            stake = document.get("stake")
        except (ValueError, KeyError, TypeError):
            raise Problem("bad-request", 'send JSON {"did": "did:key:…", "stake": wei}') from None
        amount = await asyncio.to_thread(ctx.registry.min_stake) if stake is None else stake
        if not isinstance(amount, int) or amount < 0:
            raise Problem("bad-request", "stake must be a non-negative integer")
        try:
            await asyncio.to_thread(ctx.registry.register_device, did, amount)
        except ChainError as exc:
            raise Problem("bad-request", f"registration refused: {exc}") from None
        return JSONResponse(await asyncio.to_thread(ctx.registry.device, did))

    async def on_store(request: Request, exc: Exception) -> Response:
        log.error("store error: %s", exc)
        return problem_response(Problem("store-unavailable", "the log store is unavailable"))

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        return problem_response(Problem("bad-request", "the client went away"))

    routes = [
        Route("/v1/readings", post_readings, methods=["POST"]),
        Route("/v1/log", get_log),
        Route("/v1/checkpoint", get_checkpoint),
        Route("/checkpoint", get_checkpoint),
        Route("/v1/entries/{index}", get_entry),
        Route("/v1/proof/inclusion", get_inclusion),
        Route("/v1/proof/consistency", get_consistency),
        Route("/v1/devices", post_device, methods=["POST"]),
        Route("/v1/devices/{did}", get_device),
        Route("/v1/devices/{did}/readings", get_device_readings),
        Route("/v1/channels/{channel}", get_channel),
        Route("/v1/evidence", get_evidence),
        Route("/v1/reputation", get_reputation_epochs),
        Route("/v1/reputation/epochs/{epoch}", get_reputation_table),
        Route("/v1/reputation/{id}", get_reputation),
        Route("/tile/{path:path}", get_tile),
        Route("/metrics", get_metrics),
        Route("/openapi.json", get_openapi),
        *Dashboard(ctx).routes(),
        *ctx.extra_routes,
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Problem: on_problem,
            HTTPException: on_http,
            StoreError: on_store,
            ClientDisconnect: on_disconnect,
        },
    )


def _json_response(document: Any) -> Response:
    """JSON by orjson: the receipts of a batch are large (a tlog-proof each), and
    json.dumps was a tenth of the node's work per reading."""
    return Response(orjson.dumps(document), media_type="application/json")


def _outcome(outcome: Accepted | Problem, origin: str) -> dict[str, Any]:
    return outcome.to_json(origin) if isinstance(outcome, Accepted) else outcome.to_json()


def table_summary(table: ReputationTable) -> dict[str, Any]:
    """A table's commitments: what a contract holds once it is posted."""
    return {
        "score_root": table.score_root.hex(),
        "state_root": table.state_root.hex(),
        "subjects": len(table.rows),
    }


MAX_UINT64 = (1 << 64) - 1  # (the OpenAPI document's bound on indices, sizes, seqs, epochs)


def _int(text: str | None, name: str) -> int:
    if text is None:
        raise Problem("bad-request", f"{name} is required")
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) > MAX_UINT64:
        raise Problem("bad-request", f"{name} must be an integer from 0 to 2^64-1")
    return int(text)


def _did(text: str) -> str:
    try:
        key_from_did(text)
    except InvalidDid as exc:
        raise Problem("bad-request", str(exc)) from None
    return text


def _bundle_prefix(bundle: bytes, width: int) -> bytes | None:
    """The first ``width`` entries of an entry bundle, or None if it has fewer."""
    entries = decode_bundle(bundle)
    return encode_bundle(entries[:width]) if len(entries) >= width else None
