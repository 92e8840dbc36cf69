"""``trustmesh reputation recompute``: rebuild a node's reputation tables from public
evidence alone (its log's entries and the chain's stakes) and compare them, root
for root, with what the node serves."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from trustmesh.cli._common import UsageError, err, print_json
from trustmesh.errors import Error

app = typer.Typer(no_args_is_help=True, help="Reputation: recompute and check a node's tables.")


@app.command()
def recompute(
    node: Annotated[str, typer.Option("--node", help="The node whose tables to check.")],
    rpc: Annotated[
        str | None,
        typer.Option("--rpc", help="The chain to read stakes from (default: the node's)."),
    ] = None,
) -> None:
    """Replay the node's log up to each epoch's cut, read the stakes at the cut's
    block, and compare every table's roots with the node's. Prints one JSON object;
    exits 1 if any table differs."""
    import httpx

    url = node.rstrip("/")
    with httpx.Client(timeout=30) as http:
        info = _get(http, f"{url}/v1/log")
        listing = _get(http, f"{url}/v1/reputation")
        document = _recompute(http, url, info, listing, rpc)
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
    http: Any, url: str, info: dict[str, Any], listing: dict[str, Any], rpc: str | None
) -> dict[str, Any]:
    import httpx
    from eth_account import Account

    from trustmesh.chain.client import ChainClient, rpc_web3
    from trustmesh.chain.reputation import StakeReader
    from trustmesh.chain.suite import Deployment, Registry
    from trustmesh.log.remote import bundled_entries
    from trustmesh.reputation.follow import Cut, Follower, replay

    try:
        origin = str(info["origin"])
        epoch_ms = round(float(listing["epoch_seconds"]) * 1000)
        published = {int(e["epoch"]): e for e in listing["epochs"]}
        cuts = [Cut.from_json(e) for e in listing["epochs"]]
        chain = rpc or info.get("rpc") or f"{url}/rpc"
        client = ChainClient(rpc_web3(chain), Account.create(), chain_id=int(info["chain_id"]))
        registry = Registry(client, Deployment(client.chain_id, dict(info["contracts"])))
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
        epochs.append(
            {
                "epoch": cut.epoch,
                "subjects": len(table.rows),
                "score_root": table.score_root.hex(),
                "theirs": theirs,
                "agrees": None if theirs is None else theirs == table.score_root.hex(),
            }
        )
    return {
        "node": url,
        "origin": origin,
        "epochs": epochs,
        "checked": sum(1 for e in epochs if e["agrees"] is not None),
        "differing": [e["epoch"] for e in epochs if e["agrees"] is False],
        "invalid_entries": follower.skipped,
    }
