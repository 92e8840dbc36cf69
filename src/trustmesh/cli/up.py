"""``trustmesh up``: the whole network on one machine, with a simulated fleet."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import UsageError, err

PARTITIONED_PERCENT = 30  # of the honest devices, with --mesh: reach a node through the mesh only


def up(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where it all lives (default: <user data dir>/up)."),
    ] = None,
    devices: Annotated[int, typer.Option("--devices", help="Simulated devices.")] = 20,
    malicious: Annotated[int, typer.Option("--malicious", help="How many of them misbehave.")] = 2,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes (gateways).")] = 2,
    port: Annotated[
        int, typer.Option("--port", help="The first node's port (the next free one if taken).")
    ] = 8080,
    epoch: Annotated[float, typer.Option("--epoch", help="Seconds between anchors.")] = 5.0,
    reputation_epoch: Annotated[
        float,
        typer.Option("--reputation-epoch", help="Seconds in a reputation epoch."),
    ] = 60.0,
    no_sim: Annotated[
        bool, typer.Option("--no-sim", help="Only the infrastructure: no simulated fleet.")
    ] = False,
    mesh: Annotated[
        bool,
        typer.Option(
            "--mesh",
            help="Nodes, the watcher and the fleet on the libp2p mesh (joined through the "
            "Registry); 30% of the honest devices reach their node through it alone.",
        ),
    ] = False,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop after this long (default: Ctrl-C).")
    ] = None,
) -> None:
    """Start an embedded chain, the contracts, nodes, a watcher and a simulated fleet;
    show live progress until Ctrl-C. A rerun on the same data directory resumes."""
    from trustmesh._paths import default_data_dir
    from trustmesh.up.fleet import Fleet
    from trustmesh.up.network import Network

    if (
        nodes < 1
        or devices < 0
        or not 0 <= malicious <= devices
        or min(epoch, reputation_epoch) <= 0
    ):
        raise UsageError(
            "need --nodes ≥ 1, 0 ≤ --malicious ≤ --devices, --epoch and --reputation-epoch > 0"
        )
    if not 0 < port < 65536:
        raise UsageError("--port must be 1..65535")
    directory = data_dir or default_data_dir() / "up"
    network = Network(
        directory, nodes=nodes, port=port, epoch=epoch, reputation_epoch=reputation_epoch,
        mesh=mesh,
    )  # fmt: skip
    fleet: Fleet | None = None
    with err.status("starting the chain, the nodes and the watcher…"):
        network.start()
    try:
        sys.stdout.write(f"Dashboard: {network.started[0].url}/\n")
        sys.stdout.write(f"Watcher: {network.watcher_url}/v1/status\n")
        sys.stdout.flush()
        if not no_sim:
            urls = [node.url for node in network.started]
            partitioned = (devices - malicious) * PARTITIONED_PERCENT // 100 if mesh else 0
            fleet = Fleet(directory, urls, network.watcher_url, devices=devices,
                          malicious=malicious, partitioned=partitioned)  # fmt: skip
            with err.status(f"registering {devices} devices…"):
                fleet.register()
            fleet.start()
        _show(network, fleet, seconds)
    except KeyboardInterrupt:
        pass
    finally:
        err.print("stopping…")
        if fleet is not None:
            fleet.stop()
        summary = _summary(network, fleet)
        network.stop()
        sys.stdout.write(json.dumps(summary) + "\n")


def _summary(network: Any, fleet: Any) -> dict[str, Any]:
    import httpx

    logs = {}
    for node in network.started:
        try:
            info = httpx.get(f"{node.url}/v1/log", timeout=5).json()
            logs[info["origin"]] = {"size": info["size"], "anchored": info["anchored"]["size"]}
        except (httpx.HTTPError, ValueError, KeyError):
            logs[node.url] = {"size": None, "anchored": None}
    events = network.recent_events()
    return {
        "logs": logs,
        "alerts": sorted(e["kind"] for e in events if e["event"] == "alert"),
        "slashes": sum(1 for e in events if e["event"] == "proof" and e["accepted"]),
        "fleet": fleet.snapshot() if fleet is not None else {},
    }


def _show(network: Any, fleet: Any, seconds: float | None) -> None:
    from rich.live import Live
    from rich.table import Table

    started = time.monotonic()
    pause = threading.Event()
    last_total, last_time = 0, started
    with Live(console=err, refresh_per_second=2, transient=False) as live:
        while seconds is None or time.monotonic() - started < seconds:
            summary = _summary(network, fleet)
            total = sum(v["size"] or 0 for v in summary["logs"].values())
            now = time.monotonic()
            rate = (total - last_total) / max(now - last_time, 1e-9)
            last_total, last_time = total, now
            table = Table(title=f"trustmesh up · {rate:,.1f} readings/s logged")
            for column in ("log", "entries", "anchored"):
                table.add_column(column)
            for origin, log in summary["logs"].items():
                table.add_row(origin, str(log["size"]), str(log["anchored"]))
            alerts: dict[str, int] = {}
            for kind in summary["alerts"]:
                alerts[kind] = alerts.get(kind, 0) + 1
            table.caption = (
                f"detections: {alerts or 'none'} · slashes: {summary['slashes']} · "
                f"fleet: {summary['fleet'] or 'off'}"
            )
            live.update(table)
            pause.wait(1.0)  # the display's refresh
