"""``trustmesh node run``: run a gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trustmesh._paths import default_data_dir
from trustmesh.cli._common import UsageError

app = typer.Typer(no_args_is_help=True, help="Run a node (gateway).")


@app.command()
def run(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="postgresql://… (default: SQLite in the data dir).")
    ] = None,
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="A JSON-RPC chain (default: embedded).")
    ] = None,
    mqtt: Annotated[
        str | None, typer.Option("--mqtt", help="mqtt://host:port of a broker.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 8080,
    epoch: Annotated[float, typer.Option("--epoch", help="Seconds between anchors.")] = 30.0,
    reputation_epoch: Annotated[
        float,
        typer.Option(
            "--reputation-epoch", help="Seconds in a reputation epoch (0: keep no tables)."
        ),
    ] = 600.0,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="The log's origin (default: derived from its key)."),
    ] = None,
    verify_workers: Annotated[
        int | None,
        typer.Option(
            "--verify-workers",
            help="Processes verifying signatures (default: one per core; 0: in-process).",
        ),
    ] = None,
    body_timeout: Annotated[
        float,
        typer.Option("--body-timeout", help="Seconds a client has to send a request's whole body."),
    ] = 30.0,
    settle_seconds: Annotated[
        float,
        typer.Option("--settle-seconds", help="How often paid readings' channels are settled."),
    ] = 60.0,
    mesh: Annotated[
        bool, typer.Option("--mesh", help="Also take readings over the libp2p mesh.")
    ] = False,
    mesh_port: Annotated[int, typer.Option("--mesh-port", help="The mesh's TCP port.")] = 0,
    peer: Annotated[
        list[str] | None, typer.Option("--peer", help="A mesh peer to dial (repeat).")
    ] = None,
) -> None:
    """Run a node: ingest readings over HTTP (and MQTT), log them, anchor every epoch.

    Prints one JSON line {"url", "origin", "verifier_key", "chain_id", "contracts", …} when ready.
    """
    import logging

    from trustmesh.node.run import NodeConfig, print_ready, serve

    if min(epoch, body_timeout, settle_seconds) <= 0 or reputation_epoch < 0:
        raise UsageError(
            "--epoch, --body-timeout and --settle-seconds must be positive, "
            "--reputation-epoch not negative"
        )
    if not 0 <= port <= 65535 or not 0 <= mesh_port <= 65535:
        raise UsageError("--port and --mesh-port must be 0..65535")
    logging.basicConfig(
        level=logging.INFO,
        format='{"level": "%(levelname)s", "logger": "%(name)s", "message": %(message)r}',
    )
    config = NodeConfig(
        data_dir=data_dir or default_data_dir(),
        db=db,
        rpc=rpc,
        mqtt=mqtt,
        host=host,
        port=port,
        epoch=epoch,
        reputation_epoch=reputation_epoch,
        origin=origin,
        verify_workers=verify_workers,
        body_timeout=body_timeout,
        settle_seconds=settle_seconds,
        mesh=mesh,
        mesh_port=mesh_port,
        peers=tuple(peer or ()),
    )
    serve(config, print_ready)
