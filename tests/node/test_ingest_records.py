"""A registration that lands while a request is being checked must not split a
device's readings: if its first readings are refused as unknown and a later one
of the same request accepted, the first ones could never be logged (replays)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trustmesh._problems import Problem
from trustmesh.identity import SoftwareSigner
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import open_store
from trustmesh.node._devices import DeviceRecord
from trustmesh.node._ingest import Ingestor
from trustmesh.node._latest import LatestCheckpoint
from trustmesh.node._metrics import Metrics
from trustmesh.node._state import NodeState
from trustmesh.node._verify import BatchVerifier
from trustmesh.reading import parse_reading, sign_reading


class _RegisteredMidway:
    """The registry as a node sees it when the device's registration event arrives
    right after the first lookup: unknown once, then active."""

    def __init__(self, record: DeviceRecord) -> None:
        self.active = record
        self.lookups = 0

    def cached_record(self, did: str) -> DeviceRecord | None:
        return None

    def record(self, did: str) -> DeviceRecord:
        self.lookups += 1
        return DeviceRecord("unknown", ()) if self.lookups == 1 else self.active


def test_one_registry_answer_per_device_per_request(tmp_path: Path) -> None:
    signer = SoftwareSigner.generate()
    readings = [
        parse_reading(sign_reading(signer, seq=seq, ts=1, sensor="t", value=seq))
        for seq in range(1, 5)
    ]
    directory = _RegisteredMidway(DeviceRecord("active", ((0, signer.public_key),)))

    async def lookup(call: Callable[[], Any]) -> Any:
        return call()

    store = open_store(tmp_path / "log.db")
    log_signer = LogSigner.from_seed("example.com/log", bytes(32))
    ingestor = Ingestor(
        store=store,
        signer=log_signer,
        latest=LatestCheckpoint(log_signer, store.size, store.root()),
        directory=directory,  # type: ignore[arg-type]
        state=NodeState(tmp_path / "node.db"),
        verifier=BatchVerifier(None),
        metrics=Metrics(),
        clock_ms=lambda: 1,
        lookup=lookup,
    )
    problems = asyncio.run(ingestor._authenticate(readings))
    assert directory.lookups == 1  # asked once for the whole request
    assert all(isinstance(p, Problem) and p.slug == "unknown-device" for p in problems)
    again = asyncio.run(ingestor._authenticate(readings))  # the device's retry
    assert again == [None] * 4  # all of them now, in order
