"""Detection latency per kind of lie, and a watcher's audit rate against a
node's ingest rate, measured in one run.

Latency: ``runs`` attacks of each kind (:func:`trustmesh.sim.attack.run_attack`,
embedded chain, ``epoch``-second epochs, one block a second), p50/p99 from the
lie to the watcher's alert; the goal is p99 within one epoch plus one block,
and the ratio printed is p99 / (epoch + block).

Audit rate: a real node (``trustmesh node run``, embedded chain) ingests
``readings`` readings over HTTP (its rate is the baseline); then a watcher
follows it from scratch once the node has signed a checkpoint of them all,
checking the checkpoint, every entry against its root and every signature
(did:key keys), and its entries per second are compared.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from trustmesh.sim.attack import BLOCK_S, embedded_setup, run_attack

LIES = ("invalid-entry", "equivocation", "split-view", "broken-receipt", "stall")


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def latency(
    runs: int, epoch: float, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    budget_ms = (epoch + BLOCK_S) * 1000
    for kind in LIES:
        latencies: list[int] = []
        accepted = 0
        for run in range(runs):
            progress(f"{kind}: run {run + 1}/{runs}")
            with tempfile.TemporaryDirectory() as tmp, embedded_setup(Path(tmp)) as chain:
                result = run_attack(kind, chain, epoch=epoch, seed=run)
            if result["detected"]:
                latencies.append(int(result["latency_ms"]))
            accepted += bool(result["proof_accepted"])
        p99 = _percentile(latencies, 0.99) if latencies else None
        table[kind] = {
            "runs": runs,
            "detected": len(latencies),
            "proofs_accepted": accepted,
            "p50_ms": _percentile(latencies, 0.50) if latencies else None,
            "p99_ms": p99,
            "ratio_to_epoch_plus_block": round(p99 / budget_ms, 3) if p99 is not None else None,
            "goal_met": p99 is not None and p99 <= budget_ms and len(latencies) == runs,
        }
    return table


def _checkpoint_size(http: httpx.Client, url: str) -> int:
    return int(http.get(f"{url}/v1/checkpoint").text.split("\n")[1])


def audit_rate(readings: int) -> dict[str, Any]:
    from trustmesh.bench.ingest import first_contact, http_load, register_devices, start_node
    from trustmesh.up.network import stop_node
    from trustmesh.watcher.service import Watcher

    with tempfile.TemporaryDirectory() as tmp:
        node, info = start_node(Path(tmp), None)
        try:
            fleet = register_devices(info["url"], 16)
            first_contact(info["url"], fleet)
            ingest = asyncio.run(http_load(info["url"], fleet, readings, None))
            with httpx.Client(timeout=60) as http:
                deadline = time.monotonic() + 120
                while _checkpoint_size(http, info["url"]) < readings:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the node did not sign a checkpoint of every reading")
                    time.sleep(0.2)  # polls the node's checkpoint (one per epoch)
                watcher = Watcher([info["url"]], http, verify_workers=os.cpu_count() or 1)
                try:
                    follower = next(iter(watcher.followers.values()))
                    started = time.perf_counter()
                    while follower.audited < readings:
                        watcher.tick()
                    elapsed = time.perf_counter() - started
                    audited = follower.audited
                finally:
                    watcher.close()
        finally:
            stop_node(node)
    audited_per_s = round(audited / elapsed)
    return {
        "readings": readings,
        "node_ingest_per_s": ingest["http_readings_per_s"],
        "watcher_audit_per_s": audited_per_s,
        "ratio": round(audited_per_s / ingest["http_readings_per_s"], 3),
        "goal_met": audited_per_s >= ingest["http_readings_per_s"],
    }


def run(
    runs: int = 20,
    epoch: float = 2.0,
    readings: int = 5000,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    return {
        "benchmark": "detection",
        "epoch_s": epoch,
        "block_s": BLOCK_S,
        "latency": latency(runs, epoch, progress),
        "audit": audit_rate(readings),
        "goals": {"p99_ms_at_most": (epoch + BLOCK_S) * 1000, "audit_ratio_at_least": 1.0},
    }
