"""``trustmesh proof bundle|verify``: one reading, checkable offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import UsageError, err, print_json

app = typer.Typer(no_args_is_help=True, help="Proof bundles: a reading, checkable offline.")


@app.command()
def bundle(
    node: Annotated[str, typer.Option("--node", help="The node that logged the reading.")],
    did: Annotated[str, typer.Option("--did", help="The device.")],
    seq: Annotated[int, typer.Option("--seq", help="The reading's seq.")],
) -> None:
    """Print the proof bundle (JSON) of one reading: entry, inclusion proof, signed
    checkpoint, anchor."""
    import httpx

    if seq < 0:
        raise UsageError("--seq must be non-negative")
    try:
        answer = httpx.get(
            f"{node.rstrip('/')}/v1/devices/{did}/readings", params={"seq": seq}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {node}: {exc}") from None
    if answer.status_code != 200:
        raise UsageError(f"{node} answered {answer.status_code}: {answer.text[:200]}")
    readings = answer.json().get("readings") or []
    if not readings:
        raise UsageError(f"{did} seq {seq} is not in a signed checkpoint of {node} (yet)")
    print_json(readings[0])


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="The bundle (JSON); - for standard input.")],
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="Also check the anchor and keys on this chain.")
    ] = None,
    verifier_key: Annotated[
        str | None,
        typer.Option("--verifier-key", help="Pin the log's key (else the bundle's is used)."),
    ] = None,
    log_anchor: Annotated[
        str | None,
        typer.Option(
            "--log-anchor",
            help="Pin the LogAnchor contract (with --rpc; else the bundle's is trusted).",
        ),
    ] = None,
) -> None:
    """Check a bundle: reading signature, checkpoint signature, inclusion, anchor
    (and with --rpc the chain). Prints {"valid", "failed", "steps"}; exit 1 if not valid."""
    from trustmesh.bundle import verify_bundle

    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        document: Any = json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    lookup = None
    if rpc is not None:
        from trustmesh.chain.bundle_facts import chain_lookup
        from trustmesh.chain.client import rpc_web3

        anchor = document.get("anchor") if isinstance(document, dict) else None
        if not isinstance(anchor, dict):
            raise UsageError("the bundle has no anchor to check on a chain")
        named = str(anchor.get("log_anchor"))
        if log_anchor is None:
            err.print(
                f"trusting the bundle's LogAnchor {named} (and the Registry it names): "
                "pin it with --log-anchor"
            )
        elif log_anchor.lower() != named.lower():
            raise UsageError(f"the bundle names LogAnchor {named}, not {log_anchor}")
        lookup = chain_lookup(rpc_web3(rpc), int(anchor["chain_id"]), named)
    report = verify_bundle(document, verifier_key=verifier_key, chain=lookup)
    print_json(report.to_json())
    if not report.valid:
        raise typer.Exit(1)
