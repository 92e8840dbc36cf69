"""Start real nodes (`trustmesh node run` in a subprocess) for tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chain.conftest import anvil_accounts
from tests.services import fresh_database
from trustmesh.errors import Error
from trustmesh.up.network import spawn_node, stop_node

NODE_PASSWORD = "node test password"


@dataclass
class RunningNode:
    url: str
    info: dict[str, Any]
    process: subprocess.Popen[str]
    data_dir: Path
    log: Path


@contextlib.contextmanager
def node_process(
    data_dir: Path,
    fixture: Callable[[str], Any],
    chain: str = "embedded",
    store: str = "sqlite",
    mqtt: str | None = None,
    epoch: float = 1.0,
    body_timeout: float | None = None,
    chain_key: str | None = None,
    reputation_epoch: float | None = None,
    settle_seconds: float | None = None,
    mesh: bool = False,
) -> Iterator[RunningNode]:
    """`trustmesh node run` in a subprocess; ``fixture`` fetches the services it needs.

    ``chain``: "embedded", "anvil" (the session's), or "anvil-at:URL" (any JSON-RPC
    chain the test runs itself, paid for with ``chain_key``: default anvil's first
    account)."""
    args = ["--data-dir", str(data_dir), "--port", "0", "--epoch", str(epoch),
            "--verify-workers", "1"]  # fmt: skip
    if body_timeout is not None:
        args += ["--body-timeout", str(body_timeout)]
    if reputation_epoch is not None:
        args += ["--reputation-epoch", str(reputation_epoch)]
    if settle_seconds is not None:
        args += ["--settle-seconds", str(settle_seconds)]
    if mesh:
        args += ["--mesh"]
    env = {**os.environ, "TRUSTMESH_PASSWORD": NODE_PASSWORD}
    if store == "postgres":
        args += ["--db", fresh_database(fixture("postgres_url"))]
    if chain.startswith("anvil"):
        # "anvil": the session's node; "anvil-at:URL": a node the test runs itself
        url = (
            chain.removeprefix("anvil-at:")
            if chain.startswith("anvil-at:")
            else fixture("anvil_url")
        )
        env["TRUSTMESH_CHAIN_KEY"] = chain_key or anvil_accounts()[0].key.hex()
        command = ["chain", "deploy", "--rpc", url, "--data-dir", str(data_dir)]
        deploy = subprocess.run(
            [sys.executable, "-m", "trustmesh", *command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert deploy.returncode == 0, deploy.stderr
        args += ["--rpc", url]
    if mqtt is not None:
        args += ["--mqtt", mqtt]
    log = data_dir.with_name(data_dir.name + ".log")
    with contextlib.ExitStack() as stack:
        try:
            process, info = spawn_node(
                args, env, log, on_start=lambda started: stack.callback(stop_node, started)
            )
        except Error:
            pytest.fail(f"the node did not start:\n{log.read_text()}")
        yield RunningNode(info["url"], info, process, data_dir, log)


@pytest.fixture
def start_node(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunningNode]]:
    with contextlib.ExitStack() as stack:
        count = 0

        def start(**options: Any) -> RunningNode:
            nonlocal count
            count += 1
            data_dir = tmp_path / f"node{count}"
            return stack.enter_context(node_process(data_dir, request.getfixturevalue, **options))

        yield start
