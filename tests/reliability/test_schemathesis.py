"""schemathesis against the node's and the watcher's own OpenAPI documents, each
served by a real process (a node on its embedded chain, a watcher following
it): every operation, with inputs that fit the document and inputs that break
it. Nothing a client sends gets a 500; every answer is what the document says
(status, content type, body schema); every refusal is problem+json.

``TRUSTMESH_SCHEMATHESIS_EXAMPLES``: examples per operation (default 25; the
full run documented in the README: 500)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.reliability.load import NodeProcess
from tests.services import free_port, wait_until

EXAMPLES = int(os.environ.get("TRUSTMESH_SCHEMATHESIS_EXAMPLES", "25"))
# The node's CBOR bodies (a reading, a sequence of them, an aggregate's data) go as
# the bytes generated for their binary schemas, as application/octet-stream would.
schemathesis.serializer.alias(
    ["application/cbor", "application/cose", "application/cbor-seq"], "application/octet-stream"
)


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A node and a watcher following it: their base URLs."""
    directory = tmp_path_factory.mktemp("apis")
    node = NodeProcess(directory / "node", free_port(), ["--epoch", "1"])
    node.start()
    port = free_port()
    with (directory / "watcher.log").open("w") as log:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "trustmesh", "watch", "--node", node.url, "--port", str(port),
             "--data-dir", str(directory / "watcher"), "--verify-workers", "0",
             "--interval", "0.5"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    def listening() -> bool:
        assert watcher.poll() is None, (directory / "watcher.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until(listening, "the watcher to listen")
        yield {"node": node.url, "watcher": f"http://127.0.0.1:{port}"}
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=30)
        node.stop()


# schemathesis' checks (no 500; the documented status, content type, headers and
# body schema; inputs off the document refused), as this API answers: a request
# over a documented size limit is refused with a 413 (schemathesis expects 400s).
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415, 422]}}}
)


def _answered_well(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    """But for positive_data_acceptance: a did:key of the document's pattern may
    still not decode (a bad multicodec prefix, a wrong length), which the node
    refuses with a 400 that JSON Schema cannot state."""
    response = case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("api", ["node", "watcher"])
def test_every_operation(apis: dict[str, str], api: str, mode: GenerationMode) -> None:
    """(schemathesis' own pytest loader does not run under pytest 9: its hypothesis
    strategy of the whole document is driven here instead.)"""
    schema = schemathesis.openapi.from_url(f"{apis[api]}/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 4

    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=schema.as_strategy(mode))
    def every_case(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        _answered_well(case)

    every_case()


def test_the_watcher_documents_every_route(apis: dict[str, str]) -> None:
    watcher = schemathesis.openapi.from_url(f"{apis['watcher']}/openapi.json")
    assert set(watcher.raw_schema["paths"]) == {
        "/v1/receipts", "/v1/checkpoints", "/v1/leaves", "/v1/status", "/openapi.json"}  # fmt: skip
