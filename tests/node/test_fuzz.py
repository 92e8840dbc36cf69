"""Property-based fuzzing of a running node, driven by its OpenAPI document:
nothing a client sends yields a 5xx, every refusal is problem+json with a
known type, and afterwards the node still works and its log still verifies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cbor2
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli.command import trustmesh
from tests.node.conftest import RunningNode, node_process
from trustmesh._problems import PROBLEM_BASE, PROBLEMS
from trustmesh.device import Device
from trustmesh.identity import SoftwareSigner
from trustmesh.log import merkle

DOCUMENTED_5XX = {501}  # /v1/reputation: documented as not implemented yet


@pytest.fixture(scope="module")
def fuzz_target(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[RunningNode, Device, bytes]]:
    """One node (and one registered device) for the whole module."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    with node_process(tmp_path / "node", request.getfixturevalue) as node:
        device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
        assert (
            trustmesh("device", "register", "--did", device.did, "--node", node.url).returncode == 0
        )
        yield node, device, device.sign("fuzz", 1)  # fixed bytes: generation must not vary


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


junk_text = st.text(max_size=40) | st.sampled_from(
    ["-1", "0", "1", "99999999999999999999999", "1e3", "", "did:key:zDn"]
)
media_types = st.sampled_from(
    [
        "application/cose",
        "application/cbor-seq",
        "application/json",
        "text/plain",
        "",
        "application/cose; x=1",
    ]
)


@st.composite
def bodies(draw: st.DrawFn, valid: bytes) -> bytes:
    kind = draw(st.sampled_from(["bytes", "cbor", "mutated", "concatenated", "big"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "cbor":
        item = draw(
            st.recursive(
                st.integers() | st.binary(max_size=20) | st.text(max_size=10),
                lambda c: st.lists(c, max_size=4),
                max_leaves=8,
            )
        )
        return cbor2.dumps(item)
    if kind == "mutated":
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "concatenated":
        return valid * draw(st.integers(2, 4)) + draw(st.binary(max_size=20))
    return bytes(draw(st.sampled_from([9000, 70_000])))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_every_operation(fuzz_target: Any, data: st.DataObject) -> None:
    node, _, valid = fuzz_target
    document = httpx.get(f"{node.url}/openapi.json").json()
    path, method, operation = data.draw(st.sampled_from(_operations(document)))
    url = node.url + re.sub(
        r"\{[^}]+\}", lambda _: quote(data.draw(junk_text), safe="") or "x", path
    )
    params = {
        p["name"]: data.draw(junk_text)
        for p in operation.get("parameters", [])
        if p["in"] == "query" and data.draw(st.booleans())
    }
    headers = {}
    content = None
    if method == "POST":
        content = data.draw(bodies(valid))
        headers["content-type"] = data.draw(media_types)
    response = httpx.request(
        method, url, params=params, content=content, headers=headers, timeout=30
    )
    assert response.status_code < 500 or response.status_code in DOCUMENTED_5XX, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"].removeprefix(PROBLEM_BASE) in PROBLEMS
        assert problem["status"] == response.status_code
        assert problem["detail"]


def test_node_survives_and_log_verifies(fuzz_target: Any) -> None:
    node, device, _ = fuzz_target
    entry = device.sign("after the fuzz", 1)
    answer = httpx.post(
        f"{node.url}/v1/readings", content=entry, headers={"content-type": "application/cose"}
    )
    assert answer.status_code == 200
    size = httpx.get(f"{node.url}/v1/log").json()["size"]
    entries = [httpx.get(f"{node.url}/v1/entries/{i}").content for i in range(size)]
    root = merkle.root([merkle.leaf_hash(e) for e in entries])
    index = answer.json()["index"]
    proof = httpx.get(
        f"{node.url}/v1/proof/inclusion", params={"index": index, "size": size}
    ).json()
    merkle.verify_inclusion(
        merkle.leaf_hash(entry), index, size, [bytes.fromhex(h) for h in proof["hashes"]], root
    )


FINDINGS = Path(__file__).resolve().parents[1] / "reliability" / "fuzz_corpus"


@pytest.mark.parametrize("media", ["application/cbor-seq", "application/cose"])
def test_what_the_fuzzer_found_is_refused_not_a_500(fuzz_target: Any, media: str) -> None:
    """Inputs the coverage-guided fuzzer found to break a parser (kept beside its
    corpus), each posted to the node: a 400 problem, never a 500."""
    node, _, _ = fuzz_target
    found = sorted(FINDINGS.glob("*/finding-*"))
    assert found
    for path in found:
        answer = httpx.post(f"{node.url}/v1/readings", content=path.read_bytes(),
                            headers={"content-type": media}, timeout=30)  # fmt: skip
        assert answer.status_code == 400, (path.name, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
