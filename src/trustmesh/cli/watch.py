"""``trustmesh watch``: follow nodes, audit their logs, report what they lie about."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from trustmesh.cli._common import UsageError, err, print_json


def watch(
    node: Annotated[
        list[str], typer.Option("--node", help="A node to follow (repeat for several).")
    ],
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Poll each node once, then stop.")] = False,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST each finding here.")
    ] = None,
) -> None:
    """Follow nodes: check every checkpoint and entry; print each finding as a JSON line.

    With --once, a final line {"audited", "findings"} sums up.
    """
    import httpx

    from trustmesh.watcher.audit import Finding, SeqIndex
    from trustmesh.watcher.follow import NodeFollower

    if interval <= 0:
        raise UsageError("--interval must be positive")
    index = SeqIndex()
    found = 0
    with httpx.Client(timeout=30) as http:
        try:
            followers = [NodeFollower(url, http, index) for url in node]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot follow {node}: {exc}") from None

        def report(finding: Finding) -> None:
            document: dict[str, Any] = {
                "kind": finding.kind,
                "origin": finding.origin,
                "detail": finding.detail,
                "evidence": [e.hex() if isinstance(e, bytes) else e for e in finding.evidence],
            }
            print_json(document)
            if webhook is not None:
                try:
                    http.post(webhook, json=document)
                except httpx.HTTPError as exc:
                    err.print(f"webhook failed: {exc}")

        while True:
            for follower in followers:
                try:
                    findings = follower.poll()
                except (httpx.HTTPError, ValueError) as exc:
                    reason = type(exc).__name__
                    err.print(
                        f"{follower.url}: unreachable or malformed ({reason}): liveness alert"
                    )
                    continue
                for finding in findings:
                    found += 1
                    report(finding)
            if once:
                break
            time.sleep(interval)  # the watch cadence, not a wait for a condition
    audited = sum(f.audited for f in followers)
    sys.stdout.write(json.dumps({"audited": audited, "findings": found}) + "\n")
