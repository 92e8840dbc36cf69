"""The ``trustmesh`` command run as a user runs it (``python -m trustmesh`` in a
subprocess), for every test that drives the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PASSWORD = "test password"


def trustmesh(
    *args: str | Path, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "TRUSTMESH_PASSWORD": PASSWORD, **(env or {})}
    full_env.pop("TRUSTMESH_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "trustmesh", *map(str, args)],
        env=full_env,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        check=False,
    )


def no_traceback(result: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert b"Traceback" not in result.stdout
