"""The node's dashboard at ``/``: server-rendered HTML, kept live by htmx.

The page is a frame; each panel is a fragment under ``/ui/`` that htmx
fetches on load and every few seconds: the log (size, anchor, lag, a plot of
tree growth and anchors), the devices seen in recent readings (with their
stake and status from the Registry), the latest readings (with a plot per
sensor and a Verify button), and detections (equivocation evidence this node
holds, and the fraud proofs the chain accepted, with what they slashed).
A device's score (the last reputation table this node closed) opens its
explanation: the beta reputation and trust it combines, the evidence counted
and the witnesses heard. Verify builds the reading's proof bundle and checks it as ``trustmesh proof
verify --rpc`` does, naming the step that fails. Everything comes from the
node's own store, state and chain: nothing canned.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
import time
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from trustmesh.bundle import verify_bundle
from trustmesh.chain.aggregates import AggregatesContract, Posted
from trustmesh.chain.bundle_facts import chain_lookup
from trustmesh.chain.suite import Deployment, Disputes, LogAnchor
from trustmesh.errors import ChainError, InvalidReading
from trustmesh.mesh.topics import RELAY, TOPICS
from trustmesh.reading import Reading, parse_reading
from trustmesh.reputation import ONE

RECENT = 400  # entries read for the readings, devices and plots
SHOWN = 15
GOOD_SCORE = 0.5  # a score shown green from here
CLAIMS_SHOWN = 12
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>trustmesh · {origin}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/static/htmx.min.js"></script>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f8fafc; color: #0f172a; }}
header {{ background: #0f172a; color: #f8fafc; padding: 12px 24px; }}
header code {{ color: #93c5fd; }}
main {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
        gap: 16px; padding: 16px 24px; }}
section {{ background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 12px 16px; }}
h2 {{ font-size: 15px; margin: 0 0 8px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
td, th {{ text-align: left; padding: 3px 6px; border-bottom: 1px solid #f1f5f9; }}
.ok {{ color: #16a34a; }} .bad {{ color: #dc2626; font-weight: 600; }}
button {{ font-size: 12px; padding: 1px 8px; cursor: pointer; }}
.legend span {{ margin-right: 12px; }}
</style></head>
<body>
<header><strong>trustmesh</strong> node · log <code>{origin}</code> · chain {chain_id}</header>
<main>
<section id="log" hx-get="/ui/log" hx-trigger="load, every 2s"></section>
<section id="nodes" hx-get="/ui/nodes" hx-trigger="load, every 5s"></section>
<section id="detections" hx-get="/ui/detections" hx-trigger="load, every 3s"></section>
<section id="readings" hx-get="/ui/readings" hx-trigger="load, every 2s"></section>
<section id="devices" hx-get="/ui/devices" hx-trigger="load, every 5s"></section>
<section id="aggregates" hx-get="/ui/aggregates" hx-trigger="load, every 5s"></section>
<section id="mesh" hx-get="/ui/mesh" hx-trigger="load, every 3s"></section>
<section id="verify"><h2>Verify</h2><div id="verdict">
Press <em>Verify</em> on a reading: its signature, inclusion, checkpoint and anchor are
checked, and the chain's record of them.</div></section>
<section id="reputation"><h2>Reputation</h2><div id="explanation">
Press a device's score: what it is made of, and the evidence behind it.</div></section>
</main></body></html>
"""


def _svg_lines(series: dict[str, list[tuple[float, float]]], height: int = 120) -> str:
    """A small line plot (inline SVG) of named series of (x, y) points."""
    width = 440
    points = [p for line in series.values() for p in line]
    if len(points) < 2:
        return "<p>(not enough data to plot yet)</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    dx, dy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    legend = []
    for number, (name, line) in enumerate(series.items()):
        colour = PALETTE[number % len(PALETTE)]
        coords = " ".join(
            f"{(x - x0) / dx * (width - 10) + 5:.1f},"
            f"{height - 5 - (y - y0) / dy * (height - 10):.1f}"
            for x, y in line
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>'
        )
        legend.append(f'<span style="color:{colour}">■ {html.escape(name)}</span>')
    parts.append("</svg>")
    return "".join(parts) + f'<div class="legend">{"".join(legend)}</div>'


def _index(text: str) -> bool:
    """A plain decimal index (``isdigit`` alone takes "²")."""
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit()


def _short(did: str) -> str:
    return did[:16] + "…" + did[-6:]


class Dashboard:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._devices: dict[str, tuple[float, dict[str, Any]]] = {}
        self._proven: list[dict[str, Any]] = []
        self._next_block = 0
        self._anchor_history: list[tuple[int, int]] = []
        self._origins: list[str] = []
        self._next_node_block = 0
        self._next_anchor_block = 0
        self._scan_lock = threading.Lock()
        self._claims: list[Posted] = []
        self._next_claim_block = 0

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page),
            Route("/static/htmx.min.js", self.htmx),
            Route("/ui/log", self.log),
            Route("/ui/readings", self.readings),
            Route("/ui/devices", self.devices),
            Route("/ui/detections", self.detections),
            Route("/ui/verify", self.verify, methods=["POST"]),
            Route("/ui/nodes", self.nodes),
            Route("/ui/bundle", self.bundle),
            Route("/ui/receipt", self.receipt),
            Route("/ui/reputation", self.reputation),
            Route("/ui/aggregates", self.aggregates),
            Route("/ui/mesh", self.mesh),
        ]

    async def page(self, request: Request) -> Response:
        info = self.ctx.info
        return HTMLResponse(
            PAGE.format(origin=html.escape(info["origin"]), chain_id=info["chain_id"])
        )

    async def htmx(self, request: Request) -> Response:
        script = resources.files("trustmesh.node").joinpath("static/htmx.min.js").read_bytes()
        return Response(
            script,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    def _recent(self) -> list[tuple[int, Reading]]:
        size = self.ctx.store.size
        start = max(0, size - RECENT)
        recent = []
        for offset, entry in enumerate(self.ctx.store.entries(start, size)):
            try:
                recent.append((start + offset, parse_reading(entry)))
            except InvalidReading:
                continue  # a watcher's business; the dashboard shows readings
        return recent

    def _anchors(self) -> list[tuple[int, int]]:
        """(time, size) of this log's anchors, from the chain's Anchored events."""
        contracts = self.ctx.info["contracts"]
        anchor = LogAnchor(
            self.ctx.registry.client, Deployment(self.ctx.info["chain_id"], dict(contracts))
        )
        with self._scan_lock:
            latest = self.ctx.registry.current_block()
            if latest >= self._next_anchor_block:
                origin = self.ctx.info["origin"]
                found = anchor.history(origin, self._next_anchor_block, latest)
                self._anchor_history.extend(found)
                self._next_anchor_block = latest + 1
            return list(self._anchor_history)

    async def log(self, request: Request) -> Response:
        size = self.ctx.store.size
        signed = self.ctx.ingestor.latest.get().size
        anchored, _ = self.ctx.anchorer.anchored
        recent = await asyncio.to_thread(self._recent)
        try:
            anchors = await asyncio.to_thread(self._anchors)
        except ChainError:
            anchors = list(self._anchor_history)
        plot = _svg_lines(
            {
                "entries (by reading time)": [(r.ts / 1000, i + 1) for i, r in recent],
                "anchored (by block time)": [(float(t), float(s)) for t, s in anchors[-200:]],
            }
        )
        return HTMLResponse(
            "<h2>Log</h2><table>"
            f"<tr><th>entries</th><td id='log-size'>{size}</td></tr>"
            f"<tr><th>signed</th><td id='log-signed'>{signed} (a checkpoint a batch: "
            "each receipt is a proof in one)</td></tr>"
            f"<tr><th>anchored</th><td id='log-anchored'>{anchored}</td></tr>"
            f"<tr><th>lag</th><td>{size - anchored} entries</td></tr>"
            f"<tr><th>epoch</th><td>{self.ctx.info['epoch_seconds']} s</td></tr>"
            f"</table><p>tree growth and anchors</p>{plot}"
        )

    async def readings(self, request: Request) -> Response:
        recent = await asyncio.to_thread(self._recent)
        by_sensor: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for _, reading in recent:
            value = reading.value
            if isinstance(value, int | float) and not isinstance(value, bool):
                lines = by_sensor.setdefault(reading.sensor, {})
                lines.setdefault(reading.did[-6:], []).append((reading.ts, float(value)))
        rows = []
        for index, reading in reversed(recent[-SHOWN:]):
            rows.append(
                f"<tr><td>{index}</td><td title='{html.escape(reading.did)}'>"
                f"{html.escape(_short(reading.did))}</td><td>{reading.seq}</td>"
                f"<td>{html.escape(reading.sensor)}</td>"
                f"<td>{html.escape(str(reading.value))} {html.escape(reading.unit or '')}</td>"
                f"<td><button hx-post='/ui/verify?index={index}' hx-target='#verdict'>"
                f"Verify</button> <a href='/ui/bundle?index={index}' download>bundle</a> "
                f"<a href='/ui/receipt?index={index}' download>receipt</a></td></tr>"
            )
        plots = "".join(
            f"<p>{html.escape(sensor)}, per device</p>{_svg_lines(lines, 80)}"
            for sensor, lines in sorted(by_sensor.items())
        )
        return HTMLResponse(
            "<h2>Latest readings</h2><table><tr><th>#</th><th>device</th><th>seq</th>"
            f"<th>sensor</th><th>value</th><th></th></tr>{''.join(rows)}</table>{plots}"
        )

    def _device(self, did: str) -> dict[str, Any]:
        cached = self._devices.get(did)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            record: dict[str, Any] = self.ctx.registry.device(did)
        except ChainError:
            record = cached[1] if cached else {"status": "unknown (chain down)", "stake": 0}
        self._devices[did] = (time.monotonic() + 10, record)
        return record

    async def devices(self, request: Request) -> Response:
        recent = await asyncio.to_thread(self._recent)
        last: dict[str, Reading] = {}
        for _, reading in recent:
            last[reading.did] = reading
        rows = []
        for did, reading in sorted(last.items()):
            record = await asyncio.to_thread(self._device, did)
            status = html.escape(str(record.get("status")))
            css = "ok" if status == "active" else "bad"
            rows.append(
                f"<tr class='device'><td title='{html.escape(did)}'>{html.escape(_short(did))}</td>"
                f"<td class='{css}'>{status}</td><td>{int(record.get('stake', 0)) / 1e18:.4f}</td>"
                f"<td>{self._score_cell(did)}</td><td>{html.escape(reading.sensor)} = "
                f"{html.escape(str(reading.value))}</td></tr>"
            )
        return HTMLResponse(
            f"<h2>Devices ({len(rows)} seen recently)</h2><table><tr><th>DID</th>"
            "<th>status</th><th>stake (ETH)</th><th>reputation</th><th>last reading</th></tr>"
            f"{''.join(rows)}</table>"
        )

    def _row(self, did: str) -> tuple[int, Any] | None:
        """(epoch, row) of ``did`` in the last closed reputation table, if any."""
        keeper = self.ctx.reputation
        return keeper.latest_row(did) if keeper is not None else None

    def _score_cell(self, did: str) -> str:
        found = self._row(did)
        if found is None:
            return "n/a"
        score = found[1].score / ONE
        css = "ok" if score >= GOOD_SCORE else "bad"
        return (
            f"<button class='score {css}' hx-get='/ui/reputation?did={html.escape(did)}' "
            f"hx-target='#explanation'>{score:.3f}</button>"
        )

    async def reputation(self, request: Request) -> Response:
        did = request.query_params.get("did", "")
        found = self._row(did)
        if found is None:
            return HTMLResponse("<p>no score for that device yet</p>", 404)
        epoch, row = found
        explained = row.explain()
        parts = explained["components"]
        counts = "".join(
            f"<tr><td>{html.escape(kind)}</td><td>{count}</td></tr>"
            for kind, count in explained["counts"].items()
        )
        heard = "".join(
            f"<tr><td><code>{a['id'][:16]}…</code></td><td>{a['weight']}</td></tr>"
            for a in explained["attesters"]
        )
        return HTMLResponse(
            f"<p id='explained-did' title='{html.escape(did)}'>{html.escape(_short(did))}, "
            f"epoch {epoch}: score <strong id='explained-score'>{row.score / ONE:.3f}</strong> "
            f"= beta {parts['beta'] / ONE:.3f} &times; trust factor "
            f"{(row.score / parts['beta'] if parts['beta'] else 0):.3f}</p>"
            f"<table><tr><th>evidence this epoch</th><th>events</th></tr>{counts}</table>"
            f"<table><tr><th>witnesses kept</th><th>weight</th></tr>{heard}</table>"
            f"<p>trust {parts['trust']:,} (pre-trust {parts['pretrust']:,}); evidence digest "
            f"<code>{explained['evidence_digest'][:16]}…</code>; proof: "
            f"<a href='/v1/reputation/{html.escape(did)}'>/v1/reputation/…</a></p>"
        )

    def _scan_proven(self) -> list[dict[str, Any]]:
        contracts = self.ctx.info["contracts"]
        if "Disputes" not in contracts:
            return []
        client = self.ctx.registry.client
        disputes = Disputes(client, Deployment(self.ctx.info["chain_id"], dict(contracts)))
        with self._scan_lock:  # one scan at a time: each block range is read once
            latest = self.ctx.registry.current_block()
            if latest >= self._next_block:
                self._proven.extend(disputes.proven(self._next_block, latest))
                self._next_block = latest + 1
            return list(self._proven)

    async def detections(self, request: Request) -> Response:
        evidence = [e for _, e in self.ctx.state.evidence(after_id=0)]
        try:
            proven = await asyncio.to_thread(self._scan_proven)
            chain_note = ""
        except ChainError as exc:
            proven, chain_note = self._proven, f"<p class='bad'>chain: {html.escape(str(exc))}</p>"
        rows = [
            f"<tr class='slash'><td>{html.escape(p['kind'])}</td><td>block {p['block']}</td>"
            f"<td>{p['slashed'] / 1e18:.4f} ETH slashed</td></tr>"
            for p in reversed(proven)
        ]
        held = [
            f"<tr><td>equivocation</td><td>{html.escape(_short(e.did))} seq {e.seq}</td>"
            f"<td>refused here, evidence kept</td></tr>"
            for e in evidence[-10:]
        ]
        return HTMLResponse(
            f"<h2>Detections and slashes</h2>{chain_note}"
            f"<p><strong id='slash-count'>{len(proven)}</strong> fraud proofs accepted "
            f"on-chain; {len(evidence)} equivocations refused by this node.</p>"
            f"<table>{''.join(rows + held)}</table>"
        )

    async def mesh(self, request: Request) -> Response:
        peer = self.ctx.mesh
        if peer is None:
            return HTMLResponse("<h2>Mesh</h2><p>this node is not on the mesh (--mesh)</p>")
        topics = "".join(
            f"<tr><td><code>{html.escape(topic)}</code></td>"
            f"<td>{peer.peers(topic) if topic in TOPICS else '—'}</td>"
            f"<td id='relayed-{topic.rsplit('/', 1)[-1]}'>{peer.delivered[topic]}</td>"
            f"<td id='items-{topic.rsplit('/', 1)[-1]}'>{peer.taken[topic]}</td></tr>"
            for topic in (*TOPICS, RELAY)  # (the relay protocol: batches asked for on streams)
        )
        dropped = ", ".join(f"{html.escape(k)} {n}" for k, n in sorted(peer.rejected.items()))
        return HTMLResponse(
            f"<h2>Mesh</h2><p>peer <code title='{html.escape(peer.peer_id)}'>"
            f"{html.escape(peer.peer_id[:16])}…</code>; {len(peer.banned)} peers banned; dropped: "
            f"{dropped or 'nothing'}</p><table><tr><th>topic</th><th>peers</th>"
            f"<th>messages taken</th><th>items in them</th></tr>{topics}</table>"
        )

    async def aggregates(self, request: Request) -> Response:
        try:
            rows = await asyncio.to_thread(self._claim_rows)
        except ChainError as exc:
            return HTMLResponse(f"<h2>Aggregate claims</h2><p class='bad'>chain: "
                                f"{html.escape(str(exc))}</p>")  # fmt: skip
        body = "".join(
            f"<tr class='claim {state}'><td><code title='0x{p.claim_id.hex()}'>"
            f"0x{p.claim_id.hex()[:12]}…</code></td><td>{p.result:,}</td><td>{p.count:,}</td>"
            f"<td class='{'bad' if state == 'refuted' else 'ok' if final else ''}'>{state}</td>"
            f"<td><a href='{html.escape(p.uri)}'>data</a></td></tr>"
            for p, state, final in rows
        )
        return HTMLResponse(
            "<h2>Aggregate claims</h2>"
            f"<p><strong id='claim-count'>{len(rows)}</strong> latest claims posted; a lie is "
            "refuted by whoever proves it, the rest final after their window.</p>"
            "<table><tr><th>claim</th><th>result</th><th>readings</th><th>state</th><th></th>"
            f"</tr>{body}</table>"
        )

    def _claim_rows(self) -> list[tuple[Posted, str, bool]]:
        """The latest claims posted to the Aggregates contract, each with its state."""
        address = self.ctx.info["contracts"].get("Aggregates")
        if address is None:
            return []
        contract = AggregatesContract(self.ctx.registry.client, address)
        with self._scan_lock:
            latest = self.ctx.registry.current_block()
            if latest >= self._next_claim_block:
                self._claims.extend(contract.posted(self._next_claim_block, latest))
                self._next_claim_block = latest + 1
            shown = self._claims[-CLAIMS_SHOWN:][::-1]
        states = [contract.state(p.claim_id) for p in shown]
        return [(p, "final" if s.final and s.state == "pending" else s.state, s.final)
                for p, s in zip(shown, states, strict=True)]  # fmt: skip

    def _node_rows(self) -> list[tuple[str, str, int | None, int, int]]:
        """(origin, url, size, anchored size, anchor time) of every registered node."""
        import httpx

        contracts = self.ctx.info["contracts"]
        deployment = Deployment(self.ctx.info["chain_id"], dict(contracts))
        anchor = LogAnchor(self.ctx.registry.client, deployment)
        with self._scan_lock:
            latest = self.ctx.registry.current_block()
            if latest >= self._next_node_block:
                found = self.ctx.registry.node_origins(self._next_node_block, latest)
                self._origins.extend(o for o in found if o not in self._origins)
                self._next_node_block = latest + 1
        rows = []
        for origin in list(self._origins):
            record = self.ctx.registry.node(origin)
            anchored, _, _, when = anchor.latest(origin)
            size = None  # unreachable: shown as such
            with contextlib.suppress(Exception):  # whatever a registered URL does: "unreachable"
                size = int(httpx.get(f"{record['url']}/v1/log", timeout=1).json()["size"])
            rows.append((origin, str(record["url"]), size, anchored, when))
        return rows

    async def nodes(self, request: Request) -> Response:
        try:
            rows = await asyncio.to_thread(self._node_rows)
        except ChainError as exc:
            return HTMLResponse(f"<h2>Nodes</h2><p class='bad'>chain: {html.escape(str(exc))}</p>")
        now = time.time()
        body = "".join(
            f"<tr><td>{html.escape(origin)}</td><td>{'' if size is None else size}</td>"
            f"<td>{anchored}</td><td>{'' if size is None else size - anchored}</td>"
            f"<td>{f'{now - when:.0f} s ago' if when else 'never'}</td>"
            f"<td class='{'ok' if size is not None else 'bad'}'>"
            f"{'up' if size is not None else 'unreachable'}</td></tr>"
            for origin, _, size, anchored, when in rows
        )
        return HTMLResponse(
            f"<h2>Nodes ({len(rows)} registered)</h2><table><tr><th>log</th><th>entries</th>"
            f"<th>anchored</th><th>lag</th><th>last anchor</th><th></th></tr>{body}</table>"
        )

    async def _bundle_at(self, request: Request) -> tuple[int | None, dict[str, Any] | None]:
        """The ``index`` query parameter (None if it names no entry) and that entry's
        proof bundle, as the API builds it (None until a checkpoint covers it)."""
        from trustmesh.node.app import build_bundles  # (app imports this module)

        text = request.query_params.get("index", "")
        if not _index(text) or int(text) >= self.ctx.store.size:
            return None, None
        _, bundles = await asyncio.to_thread(build_bundles, self.ctx, [int(text)])
        return int(text), bundles[0] if bundles else None

    async def _download(self, request: Request) -> tuple[int, dict[str, Any]] | Response:
        """The reading a download names and its bundle, or the 404 that says why not."""
        index, bundle = await self._bundle_at(request)
        if index is None:
            return HTMLResponse("no such reading", 404)
        if bundle is None:
            return HTMLResponse("not in a signed checkpoint yet", 404)
        return index, bundle

    async def bundle(self, request: Request) -> Response:
        found = await self._download(request)
        if isinstance(found, Response):
            return found
        index, bundle = found
        return JSONResponse(
            bundle, headers={"Content-Disposition": f'attachment; filename="bundle-{index}.json"'}
        )

    async def receipt(self, request: Request) -> Response:
        """A reading's receipt, as a device holds one: its tlog-proof in the latest
        checkpoint (what ``trustmesh proof verify --entry`` checks)."""
        found = await self._download(request)
        if isinstance(found, Response):
            return found
        index, bundle = found
        return Response(
            bundle["proof"],
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="reading-{index}.tlog-proof"'},
        )

    async def verify(self, request: Request) -> Response:
        index, found = await self._bundle_at(request)
        if index is None:
            return HTMLResponse("<p class='bad'>no such reading</p>", 400)
        if found is None:
            return HTMLResponse(f"<p>#{index} is not in a signed checkpoint yet: try again.</p>")
        bundle = found

        def check() -> Any:
            lookup = None
            if bundle["anchor"] is not None:
                anchor = bundle["anchor"]
                lookup = chain_lookup(
                    self.ctx.registry.client.w3, int(anchor["chain_id"]), anchor["log_anchor"]
                )
            return verify_bundle(bundle, chain=lookup)

        report = await asyncio.to_thread(check)
        rows = "".join(
            f"<tr><td class='{'ok' if s['ok'] else 'bad'}'>{'✓' if s['ok'] else '✗'} "
            f"{html.escape(s['step'])}</td><td>{html.escape(str(s['detail']))}</td></tr>"
            for s in report.steps
        )
        failed = html.escape(str(report.failed))
        verdict = (
            "<p class='ok' id='verdict-result'>valid</p>"
            if report.valid
            else f"<p class='bad' id='verdict-result'>failed at {failed}</p>"
        )
        return HTMLResponse(f"<p>reading #{index}</p>{verdict}<table>{rows}</table>")
