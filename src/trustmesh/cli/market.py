"""``trustmesh market …``: buy devices' readings over HTTP 402."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from trustmesh.cli._common import UsageError, err, print_json

app = typer.Typer(no_args_is_help=True, help="Buy devices' readings, paid per reading.")

DEFAULT_NODE = "http://127.0.0.1:8080"


@app.command()
def buy(
    did: Annotated[str, typer.Option("--did", help="The device whose readings to buy.")],
    budget: Annotated[int, typer.Option("--budget", help="Wei to spend at most.")],
    node: Annotated[str, typer.Option("--node", help="The node selling them.")] = DEFAULT_NODE,
    limit: Annotated[
        int, typer.Option("--limit", help="Readings to buy at most (the latest; ≤ 1000).")
    ] = 1000,
    rpc: Annotated[
        str | None,
        typer.Option("--rpc", help="The chain's JSON-RPC URL (default: what the node says)."),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="Ethereum keystore (else $TRUSTMESH_CHAIN_KEY).", dir_okay=False
        ),
    ] = None,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="trustmesh-channel (vouchers, settled in batches) or exact (x402's: a token "
            "transfer settled per payment, for devices priced in an EIP-3009 token).",
        ),
    ] = "trustmesh-channel",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the bought readings' proof bundles here (JSON).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Buy a device's latest readings within a budget.

    Opens a channel to the node for the device (or reuses the buyer's open one),
    pays each request with a cumulative voucher, verifies every proof bundle
    (signature, inclusion, checkpoint, anchor, and the chain's root and keys),
    stops at the budget, and prints {"did", "bought", "spent", "channel", ...}.
    """
    import json

    import httpx

    from trustmesh.chain.bundle_facts import chain_lookup
    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.errors import ChainError
    from trustmesh.identity import key_from_did
    from trustmesh.market.buyer import Buyer

    if budget <= 0 or not 1 <= limit <= 1000:
        raise UsageError("--budget must be positive and --limit 1..1000")
    if scheme not in ("trustmesh-channel", "exact"):
        raise UsageError("--scheme is trustmesh-channel or exact")
    key_from_did(did)
    base = node.rstrip("/")
    try:
        info = httpx.get(f"{base}/v1/log", timeout=10).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ChainError(f"cannot reach the node at {base}: {exc}") from None
    account = account_from_env_or_file(key_file, os.environ.get("TRUSTMESH_PASSWORD"))
    w3 = rpc_web3(rpc or info.get("rpc") or f"{base}/rpc")
    client = ChainClient(w3, account, chain_id=int(info["chain_id"]))
    try:
        log_anchor = str(info["contracts"]["LogAnchor"])
    except (KeyError, TypeError):
        raise ChainError(f"the node at {base} names no LogAnchor contract") from None
    lookup = chain_lookup(w3, client.chain_id, log_anchor, cached=True)
    buyer = Buyer(client, base, budget, chain=lookup, scheme=scheme)
    price = buyer.price(did)
    if price > 0:
        limit = min(limit, budget // price)
        if limit == 0:
            raise UsageError(f"the budget does not buy one reading at {price} wei")
    with err.status(f"buying {limit} readings…"):
        bought = buyer.buy(did, limit=limit)
    if out is not None:
        try:
            out.write_text(json.dumps(bought.bundles))
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    print_json(
        {
            "did": did,
            "bought": len(bought.bundles),
            "verified": len(bought.bundles),
            "price_per_reading": price,
            "spent": bought.spent,
            "channel": bought.channel,
            "node": base,
        }
    )
