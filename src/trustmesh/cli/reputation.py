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
        listing = _get(http, f"{url}/v1/reputation")
        document = _recompute(http, url, info, listing, rpc, key_file if prove else None, prove)
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
    listing: dict[str, Any],
    rpc: str | None,
    key_file: Path | None,
    prove: bool,
) -> dict[str, Any]:
    import httpx
    from eth_account import Account

    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.chain.reputation import ReputationContract
    from trustmesh.chain.stakes import StakeReader
    from trustmesh.chain.suite import Deployment, Registry
    from trustmesh.log.remote import bundled_entries
    from trustmesh.reputation.follow import Cut, Follower, replay

    try:
        origin = str(info["origin"])
        epoch_ms = round(float(listing["epoch_seconds"]) * 1000)
        published = {int(e["epoch"]): e for e in listing["epochs"]}
        cuts = [Cut.from_json(e) for e in listing["epochs"]]
        chain = rpc or info.get("rpc") or f"{url}/rpc"
        account = (
            account_from_env_or_file(key_file, os.environ.get(PASSWORD_ENV))
            if prove
            else Account.create()
        )
        client = ChainClient(rpc_web3(chain), account, chain_id=int(info["chain_id"]))
        contracts = dict(info["contracts"])
        registry = Registry(client, Deployment(client.chain_id, contracts))
        posted = contracts.get("Reputation")
        contract = ReputationContract(client, posted) if posted else None
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{url} does not serve reputation tables as expected: {exc}") from None
    if epoch_ms <= 0:
        raise UsageError(f"{url} names a reputation epoch of {epoch_ms} ms")
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

    follower = Follower(epoch_ms)
    reader = StakeReader(registry, epoch_ms)
    epochs = []
    for cut, table in replay(follower, cuts, entries, reader.stakes):
        theirs = published[cut.epoch].get("score_root")
        row: dict[str, Any] = {
            "epoch": cut.epoch,
            "subjects": len(table.rows),
            "score_root": table.score_root.hex(),
            "theirs": theirs,
            "agrees": None if theirs is None else theirs == table.score_root.hex(),
        }
        if contract is not None:
            row["onchain"] = _onchain(http, url, contract, table, prove)
        epochs.append(row)
    differing = [
        e["epoch"]
        for e in epochs
        if e["agrees"] is False or e.get("onchain", {}).get("agrees") is False
    ]
    return {
        "node": url,
        "origin": origin,
        "epochs": epochs,
        "checked": sum(1 for e in epochs if e["agrees"] is not None),
        "differing": differing,
        "invalid_entries": follower.skipped,
    }


def _onchain(http: Any, url: str, contract: Any, ours: Any, prove: bool) -> dict[str, Any]:
    """The posted root of ``ours``'s epoch against ours; when they differ, the first
    wrong value of the node's table (if it is the one posted), proven with ``prove``."""
    from trustmesh.reputation.check import first_provable
    from trustmesh.reputation.publish import rebuild

    root = contract.root(ours.epoch)
    if root == bytes(32):
        return {"root": None, "agrees": None}
    found: dict[str, Any] = {"root": root.hex(), "agrees": root == ours.score_root}
    if found["agrees"]:
        return found
    document = _get(http, f"{url}/v1/reputation/epochs/{ours.epoch}")
    posted = rebuild(document, ours.params)
    if posted.score_root != root:
        found["finding"] = "posted by another attester: this node's table is not the one posted"
        return found
    wrong = first_provable(posted)
    if wrong is None:
        found["finding"] = (
            "the posted table is consistent in itself: its inputs (evidence, edges, "
            "stakes) differ from the log's, which no one-step proof shows yet"
        )
        return found
    found["finding"] = {"kind": wrong.kind, "subject": wrong.subject.hex(), "step": wrong.step}
    if prove:
        receipt = contract.prove(posted, wrong)
        found["proven"] = {"tx": receipt["transactionHash"].hex()}
    return found
