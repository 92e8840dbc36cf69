"""Start real nodes (`trustmesh node run` in a subprocess) for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chain.conftest import anvil_accounts
from tests.services import fresh_database

NODE_PASSWORD = "node test password"


@dataclass
class RunningNode:
    url: str
    info: dict[str, Any]
    process: subprocess.Popen[str]
    data_dir: Path
    log: Path


@pytest.fixture
def start_node(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunningNode]]:
    started: list[RunningNode] = []

    def start(
        chain: str = "embedded", store: str = "sqlite", mqtt: str | None = None, epoch: float = 1.0
    ) -> RunningNode:
        data_dir = tmp_path / f"node{len(started)}"
        args = ["node", "run", "--data-dir", str(data_dir), "--port", "0", "--epoch", str(epoch),
                "--verify-workers", "1"]  # fmt: skip
        env = {**os.environ, "TRUSTMESH_PASSWORD": NODE_PASSWORD}
        if store == "postgres":
            args += ["--db", fresh_database(request.getfixturevalue("postgres_url"))]
        if chain == "anvil":
            url = request.getfixturevalue("anvil_url")
            env["TRUSTMESH_CHAIN_KEY"] = anvil_accounts()[0].key.hex()
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
        log = tmp_path / f"node{len(started)}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "trustmesh", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        assert process.stdout is not None
        line = process.stdout.readline()  # the node prints its info once it listens
        if not line:
            process.wait(timeout=30)
            pytest.fail(f"the node did not start:\n{log.read_text()}")
        info = json.loads(line)
        node = RunningNode(info["url"], info, process, data_dir, log)
        started.append(node)
        return node

    yield start
    for node in started:
        node.process.send_signal(signal.SIGINT)
        try:
            node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
        assert node.process.stdout is not None
        node.process.stdout.close()
