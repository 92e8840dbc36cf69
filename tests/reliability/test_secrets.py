"""No key material, PIN or password in logs, errors, metrics or answers; keystores
and data directories owner-only. The secrets are the real ones of a real node and
of the CLI's keystores, read back with their passwords, and searched for in every
form they could leak in (text, hex, base64)."""

from __future__ import annotations

import base64
import stat
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.cli.command import no_traceback, trustmesh
from tests.node.conftest import NODE_PASSWORD, RunningNode
from trustmesh.identity import open_keystore


def _forms(secret: bytes) -> list[str]:
    """How a secret could show up in text."""
    return [secret.hex(), base64.b64encode(secret).decode(), base64.urlsafe_b64encode(secret)
            .decode().rstrip("=")]  # fmt: skip


def _owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_a_node_keeps_its_secrets(start_node: Callable[..., RunningNode]) -> None:
    node = start_node(epoch=0.5)
    seed = open_keystore(node.data_dir / "node.keystore", NODE_PASSWORD).private_bytes()
    secrets = [NODE_PASSWORD, *_forms(seed)]
    answers = [  # whatever a client can make it say, errors included
        httpx.post(f"{node.url}/v1/readings", content=b"\xff junk",
                   headers={"content-type": "application/cbor-seq"}),
        httpx.post(f"{node.url}/v1/devices", json={"did": "did:key:nope"}),
        httpx.get(f"{node.url}/v1/devices/did:key:zDnaeUnknown/readings"),
        httpx.get(f"{node.url}/v1/log"),
        httpx.get(f"{node.url}/v1/checkpoint"),
        httpx.get(f"{node.url}/metrics"),
        httpx.get(f"{node.url}/"),
    ]  # fmt: skip
    assert {a.status_code for a in answers[:3]} <= {400, 404, 415, 422}, answers
    texts = {answer.request.url.path: answer.text for answer in answers}
    texts["the node's log"] = node.log.read_text()
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, (where, secret[:8])
    assert _owner_only(node.data_dir)
    for path in node.data_dir.iterdir():
        if path.suffix in (".keystore", ".password"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_cli_keeps_a_keystore_and_its_password_to_itself(tmp_path: Path) -> None:
    password = "cli secret password 7f3a"
    keystore = tmp_path / "d.keystore"
    made = trustmesh("device", "new", "--keystore", keystore, env={"TRUSTMESH_PASSWORD": password})
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    secret = open_keystore(keystore, password).private_bytes()
    wrong = trustmesh("device", "sign", "--keystore", keystore, "--sensor", "t", "--value", "1",
                      env={"TRUSTMESH_PASSWORD": password + "!"})  # fmt: skip
    no_traceback(wrong)
    assert wrong.returncode != 0
    shown = trustmesh(
        "device", "show", "--keystore", keystore, env={"TRUSTMESH_PASSWORD": password}
    )
    assert shown.returncode == 0, shown.stderr
    for result in (made, wrong, shown):
        output = (result.stdout + result.stderr).decode(errors="replace")
        for leak in (password, *_forms(secret)):
            assert leak not in output, leak[:8]
