"""``trustmesh proof bundle|verify``: one reading, checkable offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import UsageError, err, print_json
from trustmesh.errors import Error

app = typer.Typer(no_args_is_help=True, help="Proof bundles: a reading, checkable offline.")


@app.command()
def bundle(
    node: Annotated[str, typer.Option("--node", help="The node that logged the reading.")],
    did: Annotated[str | None, typer.Option("--did", help="The device.")] = None,
    seq: Annotated[int | None, typer.Option("--seq", help="The reading's seq.")] = None,
    receipt: Annotated[
        Path | None,
        typer.Option(
            "--receipt", help="Start from this receipt (a tlog-proof, or a node's receipt JSON)."
        ),
    ] = None,
    entry: Annotated[
        Path | None,
        typer.Option("--entry", help="With --receipt: the reading (else the node's entry)."),
    ] = None,
) -> None:
    """Print the proof bundle (JSON) of one reading: entry, receipt (its inclusion in a
    signed checkpoint), anchor. Either --did and --seq (the node's latest checkpoint),
    or --receipt (the one a device holds; the node adds the anchor)."""
    import httpx

    url = node.rstrip("/")
    try:
        if receipt is not None:
            if did is not None or seq is not None:
                raise UsageError("give --receipt, or --did and --seq, not both")
            print_json(_from_receipt(url, _receipt_text(receipt, _read(receipt)), entry))
            return
        if did is None or seq is None or seq < 0:
            raise UsageError("give --did and a non-negative --seq, or --receipt")
        answer = httpx.get(f"{url}/v1/devices/{did}/readings", params={"seq": seq}, timeout=30)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {node}: {exc}") from None
    if answer.status_code != 200:
        raise UsageError(f"{node} answered {answer.status_code}: {answer.text[:200]}")
    readings = answer.json().get("readings") or []
    if not readings:
        raise UsageError(f"{did} seq {seq} is not in a signed checkpoint of {node} (yet)")
    print_json(readings[0])


def _read(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _is_receipt_json(text: str) -> bool:
    """A node's receipt object: JSON with a "proof", and no bundle "format"."""
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return isinstance(document, dict) and "proof" in document and "format" not in document


def _receipt_text(path: Path, text: str) -> str:
    """The tlog-proof in ``text`` (read from ``path``): itself, or a receipt object's."""
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{path} is not JSON: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("proof"), str):
            raise UsageError(f'{path} is not a receipt: no "proof"')
        return str(document["proof"])
    return text


def _from_receipt(node: str, text: str, entry_path: Path | None) -> dict[str, Any]:
    """A bundle from a receipt: the entry (given, or the node's), the receipt as it
    is, and the node's latest anchor with the consistency proof to the receipt's tree."""
    import httpx

    from trustmesh.bundle import make_bundle
    from trustmesh.errors import InvalidReceipt
    from trustmesh.log.checkpoint import parse_checkpoint_text
    from trustmesh.log.note import parse_note
    from trustmesh.log.tlog_proof import parse_tlog_proof

    try:
        proof = parse_tlog_proof(text)
        signed = parse_checkpoint_text(parse_note(proof.checkpoint).text)
    except (InvalidReceipt, Error) as exc:
        raise UsageError(f"not a receipt: {exc}") from None
    with httpx.Client(timeout=30) as client:
        info = _get(client, f"{node}/v1/log").json()
        if info.get("origin") != signed.origin:
            logged = info.get("origin")
            raise UsageError(f"the receipt is of {signed.origin!r}, {node} logs {logged!r}")
        if entry_path is not None:
            try:
                entry = entry_path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {entry_path}: {exc.strerror}") from None
        else:
            entry = _get(client, f"{node}/v1/entries/{proof.index}").content
        anchored = info.get("anchored") or {}
        size, anchor = int(anchored.get("size", 0)), None
        if size:
            low, high = sorted((size, signed.size))
            consistency = _get(
                client, f"{node}/v1/proof/consistency", params={"from": low, "to": high}
            ).json()["hashes"]
            anchor = {
                "chain_id": info["chain_id"],
                "log_anchor": info["contracts"].get("LogAnchor"),
                "size": size,
                "root": bytes.fromhex(anchored["root"]),
                "consistency": [bytes.fromhex(h) for h in consistency],
            }
    try:
        return make_bundle(
            origin=signed.origin,
            verifier_key=info["verifier_key"],
            entry=entry,
            proof=text,
            anchor=anchor,
        )
    except Error as exc:
        raise UsageError(f"cannot make a bundle: {exc}") from None


def _get(client: Any, url: str, params: dict[str, int] | None = None) -> Any:
    answer = client.get(url, params=params)
    if answer.status_code != 200:
        raise UsageError(f"{url} answered {answer.status_code}: {answer.text[:200]}")
    return answer


@app.command()
def verify(
    path: Annotated[
        Path,
        typer.Argument(
            help="The bundle (JSON), or a receipt (a tlog-proof, or a node's receipt "
            "JSON; with --entry and --verifier-key); - for standard input."
        ),
    ],
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
    entry: Annotated[
        Path | None, typer.Option("--entry", help="The reading a receipt is checked against.")
    ] = None,
) -> None:
    """Check a bundle: reading signature, checkpoint signature, inclusion, anchor
    (and with --rpc the chain); or a receipt of a reading: its signature, the
    checkpoint's, the inclusion. Prints {"valid", "failed", "steps"}; exit 1 if not
    valid."""
    from trustmesh.bundle import verify_bundle, verify_receipt
    from trustmesh.log.tlog_proof import HEADER

    text = _read(path)
    if text.startswith(HEADER) or _is_receipt_json(text):
        if entry is None or verifier_key is None:
            raise UsageError("a receipt is checked against --entry and --verifier-key")
        try:
            reading = entry.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {entry}: {exc.strerror}") from None
        report = verify_receipt(_receipt_text(path, text), reading, verifier_key)
        print_json(report.to_json())
        if not report.valid:
            raise typer.Exit(1)
        return
    try:
        document: Any = json.loads(text)
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
