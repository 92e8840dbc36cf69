"""``trustmesh aggregate claim|verify|challenge``: post a computation over logged
readings as a bonded claim, check any claim against the logs, prove its lie.

A claim reads the logs of the nodes named with ``--node`` at their latest
anchors; its data is kept by the first node (``/v1/aggregates``) and posted with
that URI. ``verify`` recomputes the claim from the logs (each read from the node
the Registry names for it, or from a ``--node`` serving it) and prints the
verdict: exit 0 if the claim is true, 1 if it lies, 3 if it cannot be checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import PASSWORD_ENV, UsageError, err, print_json
from trustmesh.errors import Error, InvalidAggregate

app = typer.Typer(
    no_args_is_help=True,
    help="Aggregates: claim a computation over readings, check claims, prove their lies.",
)

NodeOption = Annotated[
    list[str], typer.Option("--node", help="A node whose log is read (repeat for several).")
]
RpcOption = Annotated[
    str | None, typer.Option("--rpc", help="The chain (default: the first node's, or its /rpc).")
]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="The paying key (default: $TRUSTMESH_CHAIN_KEY)."),
]
REDUCTIONS = ("count", "sum", "mean", "min", "max")


@app.command()
def claim(
    node: NodeOption,
    sensor: Annotated[str, typer.Option("--sensor", help="The sensor read.")],
    start: Annotated[int, typer.Option("--start", help="Window start, ms since the epoch.")],
    end: Annotated[int, typer.Option("--end", help="Window end (excluded), ms.")],
    model: Annotated[
        str,
        typer.Option("--model", help="identity, threshold:L, linear:W,B,S, logistic:W,B,S, tree:J"),
    ] = "identity",
    reduction: Annotated[str, typer.Option("--reduction", help=", ".join(REDUCTIONS))] = "mean",
    device: Annotated[
        list[str] | None, typer.Option("--device", help="A device's DID (repeat).")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Also every active P-256 device this address registered."),
    ] = None,
    rpc: RpcOption = None,
    key_file: KeyOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and print; post nothing.")
    ] = False,
) -> None:
    """Compute the query over the nodes' logs at their latest anchors, keep the
    claim's data at the first node, and post the claim with its bond. The devices
    are those named, and with --owner those the Registry says an owner registered
    (the claim commits the set as it stands)."""
    import httpx

    from trustmesh.aggregate.claim import encode
    from trustmesh.aggregate.model import Model
    from trustmesh.aggregate.query import Query, Reduction

    if reduction not in REDUCTIONS:
        raise UsageError(f"--reduction is one of {', '.join(REDUCTIONS)}")
    if not node:
        raise UsageError("name at least one --node")
    with httpx.Client(timeout=60) as http:
        infos = {url.rstrip("/"): _info(http, url.rstrip("/")) for url in node}
        logs = {str(info["origin"]): url for url, info in infos.items()}
        chain = _chain(next(iter(infos.values())), node[0], rpc, key_file, paying=not dry_run)
        devices = set(device or []) | (_owned(chain, owner) if owner else set())
        try:
            query = Query(frozenset(devices), frozenset(logs), sensor, start, end,
                          Model.parse(model), Reduction[reduction.upper()])  # fmt: skip
        except InvalidAggregate as exc:
            raise UsageError(str(exc)) from None
        sizes = [chain.latest_anchor(query.origins[log_id]).size for log_id in query.log_ids]
        if not all(sizes):
            raise UsageError("a log has no anchor yet: claims read anchored readings only")
        with err.status("reading the logs…"):
            snapshot = _snapshot(http, query, sizes, logs)
        made = snapshot.honest(query, sizes, chain.key_for)
        if made is None:
            raise UsageError("no anchored reading matches the query")
        document: dict[str, Any] = {
            "query_hash": "0x" + query.hash.hex(), "sizes": list(sizes),
            "root": "0x" + made.root.hex(), "result": made.result, "count": made.count,
            "claim_id": "0x" + made.id.hex(),
        }  # fmt: skip
        if dry_run:
            print_json(document)
            return
        first = node[0].rstrip("/")
        answer = http.post(f"{first}/v1/aggregates", content=encode(made),
                           headers={"content-type": "application/cbor"})  # fmt: skip
        if answer.status_code != 201:
            raise UsageError(f"{first} did not keep the claim's data: {answer.text[:200]}")
        uri = first + str(answer.json()["path"])
    contract = _aggregates(chain)
    claim_id, receipt = contract.post(made.to_abi(), made.result, made.count, uri)
    document |= {"uri": uri, "deadline": contract.state(claim_id).deadline,
                 "transaction": "0x" + bytes(receipt["transactionHash"]).hex()}  # fmt: skip
    print_json(document)


@app.command()
def verify(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (0x + 64 hex digits).")],
    node: NodeOption,
    rpc: RpcOption = None,
    challenge: Annotated[
        bool, typer.Option("--challenge", help="Prove the claim's lie on-chain, if it lies.")
    ] = False,
    key_file: KeyOption = None,
) -> None:
    """Recompute a posted claim from the logs and judge it: exit 0 if true, 1 if it
    lies (proven with --challenge), 3 if it cannot be checked."""
    _verify(claim_id, node, rpc, challenge, key_file)


@app.command("challenge")
def challenge_command(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (0x + 64 hex digits).")],
    node: NodeOption,
    rpc: RpcOption = None,
    key_file: KeyOption = None,
) -> None:
    """Verify a claim and, if it lies, prove the lie on-chain (verify --challenge)."""
    _verify(claim_id, node, rpc, True, key_file)


def _verify(
    claim_id: str, node: list[str], rpc: str | None, prove: bool, key_file: Path | None
) -> None:
    import httpx

    from trustmesh.aggregate.audit import Verdict, judge, read_data
    from trustmesh.watcher.aggregates import fetch_data

    wanted = _claim_id(claim_id)
    if not node:
        raise UsageError("name at least one --node (it names the chain and its contracts)")
    with httpx.Client(timeout=60) as http:
        infos = {url.rstrip("/"): _info(http, url.rstrip("/")) for url in node}
        chain = _chain(next(iter(infos.values())), node[0], rpc, key_file, paying=prove)
        contract = _aggregates(chain)
        found = [p for p in contract.posted(0) if p.claim_id == wanted]
        if not found:
            raise UsageError(f"no claim {claim_id} was posted on this chain")
        event = found[-1]
        claim = read_data(event, fetch_data(http, event.uri))
        if isinstance(claim, Verdict):
            verdict = claim
        else:
            logs = {str(info["origin"]): url for url, info in infos.items()}
            for origin in claim.query.logs:
                logs.setdefault(origin, str(chain.registry.node(origin)["url"]))
            with err.status("reading the logs…"):
                snapshot = _snapshot(http, claim.query, list(claim.sizes), logs)
            verdict = judge(event, claim, snapshot, chain.key_for)
    document: dict[str, Any] = {**verdict.to_json(), "state": contract.state(wanted).state}
    if verdict.challenge is not None and prove and not isinstance(claim, Verdict):
        receipt = contract.challenge(claim.to_abi(), verdict.challenge.method,
                                     verdict.challenge.args)  # fmt: skip
        transaction = "0x" + bytes(receipt["transactionHash"]).hex()
        document["proven"] = {**_jsonable(contract.refuted(receipt)), "transaction": transaction}
        document["state"] = contract.state(wanted).state
    print_json(document)
    if verdict.status != "true":
        raise typer.Exit(1 if verdict.status == "lie" else 3)


# --- I/O -----------------------------------------------------------------------------


def _claim_id(text: str) -> bytes:
    digits = text.removeprefix("0x")
    if len(digits) != 64:
        raise UsageError("a claim id is 0x and 64 hex digits")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise UsageError("a claim id is 0x and 64 hex digits") from None


def _info(http: Any, url: str) -> dict[str, Any]:
    from trustmesh.cli.reputation import _get

    info = _get(http, f"{url}/v1/log")
    if "origin" not in info or "contracts" not in info or "chain_id" not in info:
        raise UsageError(f"{url} does not describe its log and chain")
    return info


def _chain(info: dict[str, Any], first: str, rpc: str | None, key_file: Path | None,
           *, paying: bool) -> Any:  # fmt: skip
    from eth_account import Account

    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.chain.suite import Deployment
    from trustmesh.watcher.onchain import ChainView

    url = rpc or info.get("rpc") or first.rstrip("/") + "/rpc"
    if paying:
        if key_file is None and not os.environ.get("TRUSTMESH_CHAIN_KEY"):
            raise UsageError("give --key-file or $TRUSTMESH_CHAIN_KEY: the key that pays")
        try:
            account = account_from_env_or_file(key_file, os.environ.get(PASSWORD_ENV))
        except Error as exc:
            raise UsageError(str(exc)) from None
    else:
        account = Account.create()  # reads only
    client = ChainClient(rpc_web3(url), account, chain_id=int(info["chain_id"]))
    return ChainView(client, Deployment(client.chain_id, dict(info["contracts"])))


def _owned(chain: Any, owner: str) -> set[str]:
    """The active P-256 devices ``owner`` registered."""
    from web3 import Web3

    from trustmesh.identity import Alg, key_from_did

    if not Web3.is_address(owner):
        raise UsageError(f"--owner {owner!r} is not an address")
    return {
        did
        for did in chain.registry.devices_of(owner)
        if key_from_did(did).alg is Alg.ES256 and chain.registry.device(did)["status"] == "active"
    }


def _aggregates(chain: Any) -> Any:
    from trustmesh.chain.aggregates import AggregatesContract

    address = chain.deployment.contracts.get("Aggregates")
    if address is None:
        raise UsageError("the node's deployment has no Aggregates contract")
    return AggregatesContract(chain.client, address)


def _snapshot(http: Any, query: Any, sizes: list[int], logs: dict[str, str]) -> Any:
    """The entries of each log the query reads, up to its size, from its node."""
    import httpx

    from trustmesh.aggregate.audit import Snapshot
    from trustmesh.log.remote import bundled_entries

    entries = {}
    for log_id, size in zip(query.log_ids, sizes, strict=True):
        origin = query.origins[log_id]
        url = logs.get(origin)
        if url is None:
            raise UsageError(f"no node serves the log {origin}: name it with --node")
        try:
            found = bundled_entries(http, url.rstrip("/"), 0, size)
        except (httpx.HTTPError, ValueError) as exc:
            raise UsageError(f"reading {origin} from {url}: {exc}") from None
        if found is None or len(found) != size:
            raise UsageError(f"{url} does not serve the first {size} entries of {origin}")
        entries[log_id] = found
    return Snapshot(entries)


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    return {key: (value if isinstance(value, (int, str)) else str(value))
            for key, value in event.items()}  # fmt: skip
