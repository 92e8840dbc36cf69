"""``trustmesh watch``: follow nodes, audit their logs, prove what they lie about."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import PASSWORD_ENV, UsageError, err, print_json


def watch(
    node: Annotated[
        list[str], typer.Option("--node", help="A node to follow (repeat for several).")
    ],
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            help="The chain the nodes anchor on (default: the first node's, or its /rpc).",
        ),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Ethereum JSON keystore that pays for fraud proofs (else $TRUSTMESH_CHAIN_KEY; "
            "with neither, findings are reported but not proven).",
            dir_okay=False,
        ),
    ] = None,
    peer: Annotated[
        list[str] | None,
        typer.Option("--peer", help="Another watcher to compare checkpoints with (repeat)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="Serve POST /v1/receipts and checkpoint gossip on this loopback port."
        ),
    ] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls.")] = 2.0,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            help="Seconds past a log's epoch a checkpoint it signed may stay unanchored "
            "before it is notarized on-chain (default: one more epoch).",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll each node once, then stop.")] = False,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST each alert and proof here.")
    ] = None,
    verify_workers: Annotated[
        int | None,
        typer.Option(
            "--verify-workers",
            help="Processes checking entry signatures (default: one per core; 0: in-process).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where this run mirrors the logs it follows, removed at the end "
            "(default: <user data dir>/watcher).",
            file_okay=False,
        ),
    ] = None,
    mesh_peer: Annotated[
        list[str] | None,
        typer.Option(
            "--mesh-peer",
            help="Join the libp2p mesh through this peer (repeat): checkpoints heard there "
            "are compared too.",
        ),
    ] = None,
    join_mesh: Annotated[
        bool,
        typer.Option(
            "--mesh",
            help="Join the libp2p mesh through the peers the Registry lists (the nodes').",
        ),
    ] = False,
) -> None:
    """Follow nodes: check every checkpoint, entry, receipt and anchor; prove lies on-chain.

    Each alert and each proof is printed as a JSON line. At the end (--once, or
    Ctrl-C) a final line {"audited", "findings"} sums up.
    """
    import httpx

    from trustmesh.watcher.service import Watcher

    _check_options(interval, grace, verify_workers, port)
    workers = (os.cpu_count() or 1) if verify_workers is None else verify_workers
    with httpx.Client(timeout=30) as http:

        def report(document: dict[str, Any]) -> None:
            print_json(document)
            if webhook is not None:
                try:
                    http.post(webhook, json=document)
                except httpx.HTTPError as exc:
                    err.print(f"webhook failed: {exc}")

        try:
            info = http.get(node[0].rstrip("/") + "/v1/log").json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UsageError(f"cannot follow {node[0]}: {exc}") from None
        chain = _chain_view(info, node[0], rpc, key_file)
        mirror = _mirror_dir(data_dir)
        joins = bool(mesh_peer) or join_mesh
        mesh = _mesh_peer(http, node, chain, mesh_peer or [], join_mesh) if joins else None
        try:
            watcher = Watcher(
                node,
                http,
                chain=chain,
                peers=peer or [],
                report=report,
                mirror=mirror,
                verify_workers=workers,
                grace=grace,
                mesh=mesh,
            )
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            _close(mesh)
            raise UsageError(f"cannot follow {node}: {exc}") from None
        server = None
        if port is not None:
            server = _serve(watcher, port)
        stop = threading.Event()
        try:
            while True:
                watcher.tick()
                if once or stop.wait(interval):  # the watch cadence
                    break
        except KeyboardInterrupt:
            err.print("stopped")  # Ctrl-C: a clean stop, with the summary below
        finally:
            if server is not None:
                server.stop()
            audited = sum(f.audited for f in watcher.followers.values())
            watcher.close()
            _close(mesh)
    sys.stdout.write(json.dumps({"audited": audited, "findings": watcher.alerts}) + "\n")


def _check_options(
    interval: float, grace: float | None, verify_workers: int | None, port: int | None
) -> None:
    if interval <= 0:
        raise UsageError("--interval must be positive")
    if grace is not None and grace < 0:
        raise UsageError("--grace must not be negative")
    if verify_workers is not None and verify_workers < 0:
        raise UsageError("--verify-workers must be 0 or more")
    if port is not None and not 0 < port < 65536:
        raise UsageError("--port must be 1..65535")


def _close(mesh: Any) -> None:
    if mesh is not None:
        mesh.close()


def _mesh_peer(http: Any, nodes: list[str], chain: Any, addresses: list[str],
               registry: bool) -> Any:  # fmt: skip
    """This watcher's mesh peer (:func:`trustmesh.watcher.mesh.watcher_peer`)."""
    from trustmesh.errors import InvalidMeshMessage
    from trustmesh.watcher.mesh import watcher_peer

    if registry and chain is None:
        raise UsageError("--mesh joins through the Registry: the node names no chain")
    try:
        return watcher_peer(http, nodes, chain, addresses, registry=registry)
    except InvalidMeshMessage as exc:
        raise UsageError(str(exc)) from None


def _mirror_dir(data_dir: Path | None) -> Path:
    """Where this run's mirrors go (``--data-dir``, else the user data dir), created."""
    from trustmesh._paths import default_data_dir, private_dir

    mirror = data_dir or default_data_dir() / "watcher"
    try:
        private_dir(mirror)
    except OSError as exc:
        raise UsageError(f"cannot use --data-dir {mirror}: {exc}") from None
    return mirror


def _chain_view(
    info: dict[str, Any], first_node: str, rpc: str | None, key_file: Path | None
) -> Any:
    """The chain the nodes anchor on, with the key that pays for proofs (None: no chain)."""
    from eth_account import Account

    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.chain.suite import Deployment
    from trustmesh.watcher.onchain import ChainView

    contracts = info.get("contracts")
    if not isinstance(contracts, dict) or "Disputes" not in contracts:
        err.print("the node names no Disputes contract: findings are reported, not proven")
        return None
    url = rpc or info.get("rpc") or first_node.rstrip("/") + "/rpc"
    if rpc is None:
        err.print(
            f"reading the chain through {url}, as the node says: --rpc checks it independently"
        )
    if key_file is None and not os.environ.get("TRUSTMESH_CHAIN_KEY"):
        err.print("no --key-file or $TRUSTMESH_CHAIN_KEY: findings are reported, not proven")
        account, can_prove = Account.create(), False  # reads only
    else:
        account = account_from_env_or_file(key_file, os.environ.get(PASSWORD_ENV))
        can_prove = True
    client = ChainClient(rpc_web3(url), account, chain_id=int(info["chain_id"]))
    return ChainView(client, Deployment(client.chain_id, dict(contracts)), can_prove=can_prove)


def _serve(watcher: Any, port: int) -> Any:
    from trustmesh._server import ThreadedServer
    from trustmesh.watcher.api import create_watcher_app

    return ThreadedServer(create_watcher_app(watcher), port=port).start()
