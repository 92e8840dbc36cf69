"""``trustmesh reputation recompute``: rebuild a node's reputation tables from public
evidence alone (its log's entries and the chain's stakes) and compare them, root
for root, with what the node serves and with what was posted on-chain; with
``--prove``, prove the first wrong value of a posted table that differs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import PASSWORD_ENV, UsageError, err, print_json
from trustmesh.errors import Error

app = typer.Typer(no_args_is_help=True, help="Reputation: recompute and check a node's tables.")


@app.command()
def recompute(
    node: Annotated[str, typer.Option("--node", help="The node whose tables to check.")],
    rpc: Annotated[
        str | None,
        typer.Option("--rpc", help="The chain to read stakes from (default: the node's)."),
    ] = None,
    prove: Annotated[
        bool,
        typer.Option("--prove", help="Prove a posted table's first wrong value on-chain."),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="With --prove: the paying key (default: $TRUSTMESH_CHAIN_KEY)."
        ),
    ] = None,
) -> None:
    """Replay the node's log up to each epoch's cut, read the stakes at the cut's
    block, and compare every table's roots with the node's and the chain's. Prints
    one JSON object; exits 1 if any table differs."""
    import httpx

    if prove and key_file is None and not os.environ.get("TRUSTMESH_CHAIN_KEY"):
        raise UsageError("--prove needs --key-file or $TRUSTMESH_CHAIN_KEY to pay for proofs")
    url = node.rstrip("/")
    with httpx.Client(timeout=30) as http:
        info = _get(http, f"{url}/v1/log")
        document = _recompute(http, url, info, rpc, key_file, prove)
    print_json(document)
    if document["differing"]:
        raise typer.Exit(1)


def _get(http: Any, url: str) -> dict[str, Any]:
    import httpx

    try:
        answer = http.get(url)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {url}: {exc}") from None
    if answer.status_code != 200:
        raise UsageError(f"{url} answered {answer.status_code}: {answer.text[:200]}")
    try:
        document = answer.json()
    except ValueError:
        raise UsageError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise UsageError(f"{url} did not answer a JSON object")
    return document


def _recompute(
    http: Any,
    url: str,
    info: dict[str, Any],
    rpc: str | None,
    key_file: Path | None,
    prove: bool,
) -> dict[str, Any]:
    import httpx
    from eth_account import Account

    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.chain.reputation import ReputationContract
    from trustmesh.chain.suite import Deployment
    from trustmesh.log.remote import bundled_entries
    from trustmesh.watcher.onchain import ChainView
    from trustmesh.watcher.reputation import TableAuditor, differs, registry_verifier

    try:
        origin = str(info["origin"])
        chain = rpc or info.get("rpc") or f"{url}/rpc"
        password = os.environ.get(PASSWORD_ENV)
        account = account_from_env_or_file(key_file, password) if prove else Account.create()
        client = ChainClient(rpc_web3(chain), account, chain_id=int(info["chain_id"]))
        contracts = dict(info["contracts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{url} does not describe its log as expected: {exc}") from None
    if rpc is None:
        err.print(
            f"reading stakes through {chain}, as the node says: --rpc checks it independently"
        )

    def entries(log: str, start: int, end: int) -> list[bytes]:
        if log != origin:
            raise Error(f"the cut names a log this node does not serve: {log}")
        try:
            found = bundled_entries(http, url, start, end)
        except (httpx.HTTPError, ValueError) as exc:
            raise Error(f"reading entries {start}..{end - 1} of {url}: {exc}") from None
        if found is None:
            raise Error(f"{url} serves no entry bundles")
        return found

    chain_view = ChainView(client, Deployment(client.chain_id, contracts), can_prove=False)
    posted = contracts.get("Reputation")
    contract = ReputationContract(client, posted) if posted else None
    verify = registry_verifier(chain_view.key_for)  # the Registry's keys, as the node's
    auditor = TableAuditor(
        url,
        http,
        entries,
        chain_view.registry,
        chain_view.anchor,
        contract,
        verify=verify,
        prove=prove,
    )
    try:
        epochs = auditor.check()
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{url} does not serve reputation tables as expected: {exc!r}") from None
    if not auditor.keeps_tables:
        raise UsageError(f"{url} keeps no reputation tables")
    differing = [e["epoch"] for e in epochs if differs(e)]
    return {
        "node": url,
        "origin": origin,
        "epochs": epochs,
        "checked": sum(1 for e in epochs if e["agrees"] is not None),
        "differing": differing,
        "invalid_entries": auditor.skipped,
    }
