"""Soak: a node held at a share (default 80%) of its HTTP ingest rate, measured
in the same run, for minutes on end, with a watcher following it and checking
every entry. Each minute: readings receipted per second, p99 latency, the node's
and the watcher's resident memory and open file descriptors, and how many entries
the watcher is behind. A node that keeps its promises over time shows all of it
flat; whatever was sent and not receipted is counted as lost (it must be none).
After the load, the watcher is given up to as long again to audit everything the
node logged: on one machine it shares the cores the node was using (it checks
every signature again), so it falls behind under the load and must catch up
after it, with no alert (every reading was honest).

The readings are signed before the clock starts (the generator shares the
machine with the node and the watcher: signing live would take their cores)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from trustmesh.bench.ingest import (
    BATCH,
    IN_FLIGHT,
    Connection,
    Device,
    first_contact,
    http_load,
    register_devices,
    sign_ahead,
    start_node,
)
from trustmesh.up.network import stop_node

DEVICES = 100
CALIBRATION_SECONDS = 20.0
SAMPLE_SECONDS = 5.0


@dataclass
class _Sent:
    """One batch: when it was sent, how long its answer took, what it got."""

    at: float
    seconds: float
    receipted: int
    refused: int


@dataclass
class _Sample:
    at: float
    node_rss_mb: float
    node_fds: int
    watcher_rss_mb: float
    watcher_fds: int
    node_size: int
    watcher_audited: int


@dataclass
class _Run:
    sent: list[_Sent] = field(default_factory=list)
    samples: list[_Sample] = field(default_factory=list)
    failed_batches: int = 0
    catch_up: dict[str, Any] = field(default_factory=dict)


def run(
    minutes: float = 10.0,
    load: float = 0.8,
    devices: int = DEVICES,
    every: float = 60.0,
    calibrate: float = CALIBRATION_SECONDS,
) -> dict[str, Any]:
    """Measure; returns the JSON object that ``trustmesh bench soak --json`` prints
    (its series a line per ``every`` seconds, after ``calibrate`` seconds at full
    speed that measure the rate it is a share of)."""
    with tempfile.TemporaryDirectory() as tmp:
        node, info = start_node(Path(tmp), None)
        watcher: subprocess.Popen[bytes] | None = None
        try:
            url = info["url"]
            fleet = register_devices(url, devices)
            first_contact(url, fleet)
            calibration = uvloop.run(http_load(url, fleet, 20_000, calibrate))
            capacity = calibration["http_readings_per_s"]
            target = load * capacity
            seconds = minutes * 60
            batches = _sign_batches(fleet, int(target * seconds) + BATCH * IN_FLIGHT)
            watcher, watcher_url = _start_watcher(Path(tmp), url)
            result = _Run()
            stop = threading.Event()
            sampler = threading.Thread(
                target=_sample,
                args=(
                    node.pid,
                    watcher.pid,
                    url,
                    watcher_url,
                    result,
                    stop,
                    min(SAMPLE_SECONDS, every / 2),
                ),
            )
            sampler.start()
            try:
                uvloop.run(_paced(url, batches, target, seconds, result))
            finally:
                stop.set()
                sampler.join()
            result.catch_up = _catch_up(url, watcher_url, limit=seconds)
        finally:
            if watcher is not None:
                watcher.terminate()
                watcher.wait(timeout=30)
            stop_node(node)
    return _report(result, minutes, every, load, capacity, target)


def _sign_batches(fleet: list[Device], count: int) -> list[list[bytes]]:
    """IN_FLIGHT lanes of batches, each lane with its own devices (a device's
    readings go in seq order down one connection, as a real device sends them),
    signed by the ingest benchmark's :func:`sign_ahead`, on every core."""
    return [
        [b"".join(share[i : i + BATCH]) for i in range(0, len(share), BATCH)]
        for share in sign_ahead(fleet, count)
    ]


def _start_watcher(tmp: Path, node_url: str) -> tuple[subprocess.Popen[bytes], str]:
    """``trustmesh watch`` following the node, serving its status on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp / "watcher.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "trustmesh", "watch", "--node", node_url, "--port", str(port),
         "--interval", "1", "--verify-workers", "2", "--data-dir", str(tmp / "watcher")],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def listening() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"the watcher exited: {(tmp / 'watcher.log').read_text()}")
        httpx.get(f"{url}/v1/status", timeout=2)

    Retrying(
        retry=retry_if_exception_type(httpx.HTTPError),
        stop=stop_after_delay(60),
        wait=wait_fixed(0.2),
        reraise=True,
    )(listening)
    return process, url


async def _paced(
    url: str, lanes: list[list[bytes]], target: float, seconds: float, result: _Run
) -> None:
    """Each lane sends a batch every IN_FLIGHT * BATCH / target seconds (and waits
    for its answer before the next: a node that falls behind shows as slower)."""
    interval = IN_FLIGHT * BATCH / target
    start = time.monotonic()

    async def lane(batches: list[bytes], offset: float) -> None:
        connection = await Connection.open(url)
        try:
            for number, body in enumerate(batches):
                due = start + offset + number * interval
                if due - start >= seconds:
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))  # the pace
                sent = time.monotonic()
                try:
                    status, content = await connection.post(
                        "/v1/readings", body, "application/cbor-seq"
                    )
                except ConnectionError:
                    result.failed_batches += 1
                    connection = await Connection.open(url)
                    continue
                items = orjson.loads(content) if status == 200 else []
                receipted = sum(1 for item in items if "index" in item)
                result.sent.append(
                    _Sent(sent - start, time.monotonic() - sent, receipted, len(items) - receipted)
                )
                if status != 200:
                    result.failed_batches += 1
        finally:
            connection.close()

    await asyncio.gather(
        *(lane(batches, i * interval / IN_FLIGHT) for i, batches in enumerate(lanes))
    )


def _sample(
    node_pid: int,
    watcher_pid: int,
    node_url: str,
    watcher_url: str,
    result: _Run,
    stop: threading.Event,
    interval: float,
) -> None:
    start = time.monotonic()
    with httpx.Client(timeout=10) as http:
        while not stop.wait(interval):
            try:
                size = http.get(f"{node_url}/v1/log").json()["size"]
                audited = sum(http.get(f"{watcher_url}/v1/status").json()["logs"].values())
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            result.samples.append(
                _Sample(
                    time.monotonic() - start,
                    _rss_mb(node_pid),
                    _fds(node_pid),
                    _rss_mb(watcher_pid),
                    _fds(watcher_pid),
                    size,
                    audited,
                )
            )


def _catch_up(node_url: str, watcher_url: str, limit: float) -> dict[str, Any]:
    """How long the watcher took to audit everything the node had logged when the
    load stopped (``seconds`` None: not within ``limit``), and its alerts."""
    with httpx.Client(timeout=10) as http:
        size = http.get(f"{node_url}/v1/log").json()["size"]

        def status() -> tuple[int, int]:
            found = http.get(f"{watcher_url}/v1/status").json()
            return size - sum(found["logs"].values()), int(found["alerts"])

        start, (behind, _) = time.monotonic(), status()
        try:
            left, alerts = Retrying(
                retry=retry_if_result(lambda found: found[0] > 0)
                | retry_if_exception_type(httpx.HTTPError),
                stop=stop_after_delay(limit),
                wait=wait_fixed(1),
            )(status)
        except RetryError:
            left, alerts = status()
    elapsed = time.monotonic() - start
    return {
        "behind_when_the_load_stopped": behind,
        "seconds": round(elapsed, 1) if left <= 0 else None,
        "audited_per_s": round((behind - max(left, 0)) / elapsed) if elapsed else None,
        "alerts": alerts,
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _report(
    result: _Run, minutes: float, every: float, load: float, capacity: float, target: float
) -> dict[str, Any]:
    series: list[dict[str, Any]] = []
    for part in range(max(1, int(minutes * 60 / every))):
        low, high = part * every, (part + 1) * every
        sent = [s for s in result.sent if low <= s.at < high]
        samples = [s for s in result.samples if low <= s.at < high]
        latencies = sorted(s.seconds for s in sent for _ in range(max(1, s.receipted)))
        last = samples[-1] if samples else None
        series.append(
            {
                "until_s": round(high),
                "readings_per_s": round(sum(s.receipted for s in sent) / every),
                "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 1)
                if latencies
                else None,
                "node_rss_mb": round(last.node_rss_mb, 1) if last else None,
                "node_fds": last.node_fds if last else None,
                "watcher_rss_mb": round(last.watcher_rss_mb, 1) if last else None,
                "watcher_fds": last.watcher_fds if last else None,
                "watcher_behind": last.node_size - last.watcher_audited if last else None,
            }
        )
    rates = [m["readings_per_s"] for m in series]
    steady = series[1:] if len(series) > 2 else series  # (the first part warms up)

    def growth(key: str) -> float | None:
        values = [m[key] for m in steady if m[key] is not None]
        return round(values[-1] - values[0], 1) if len(values) > 1 else None

    receipted = sum(s.receipted for s in result.sent)
    return {
        "benchmark": "soak",
        "minutes": minutes,
        "load": load,
        "calibrated_readings_per_s": round(capacity),  # the baseline: this run, full speed
        "target_readings_per_s": round(target),
        "readings_per_s": round(receipted / (minutes * 60)),
        "ratio": round(receipted / (minutes * 60) / capacity, 3),
        "series": series,
        "readings_per_s_min_max": [min(rates), max(rates)] if rates else None,
        "node_rss_growth_mb": growth("node_rss_mb"),
        "node_fd_growth": growth("node_fds"),
        "watcher_rss_growth_mb": growth("watcher_rss_mb"),
        "watcher_behind_at_end": series[-1]["watcher_behind"] if series else None,
        "watcher_catch_up": result.catch_up,
        # sent and not receipted: refused items and batches without an answer
        "lost": {
            "refused": sum(s.refused for s in result.sent),
            "failed_batches": result.failed_batches,
        },
    }
