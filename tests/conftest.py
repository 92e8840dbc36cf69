"""Shared fixtures: test vectors from ../shared/vectors and a real SoftHSM2 token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trustmesh.identity import KdfParams

REPO = Path(__file__).resolve().parent.parent
# Copied unchanged from the standards' own sources (see tests/vectors/README.md).
VECTORS = REPO / "tests" / "vectors"
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")

# Cheap Argon2id costs, so the suite does not spend its time in the KDF.
FAST_KDF = KdfParams(memory_kib=64, iterations=1, lanes=1)


def load_vector(name: str) -> Any:
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(f"test vector {path} is missing")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class SoftHsmToken:
    label: str
    pin: str
    conf: Path

    def uri(self, key_label: str) -> str:
        return (
            f"pkcs11:token={self.label};object={key_label}"
            f"?module-path={SOFTHSM_MODULE}&pin-value={self.pin}"
        )


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """A fresh SoftHSM2 token in a temporary directory (scripts/test installs softhsm2)."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.is_file():
        pytest.fail("SoftHSM2 is not installed: run scripts/test, or apt-get install softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the module when it initialises
    token = SoftHsmToken(label="trustmesh-test", pin="4321", conf=conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", token.label, "--so-pin", "8765",
         "--pin", token.pin],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield token
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (scripts/test installs it)."""
    from tests.services import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """A fresh anvil node for the session (scripts/test installs it from npm)."""
    from tests.services import anvil_node

    with anvil_node() as url:
        yield url


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """A real Mosquitto broker for the session (scripts/test installs it)."""
    from tests.services import mosquitto_broker

    with mosquitto_broker() as url:
        yield url
