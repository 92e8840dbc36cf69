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
from trustmesh.log.store import LogStore, SqliteBackend, open_store
from trustmesh.node._devices import DeviceRecord
from trustmesh.node._ingest import Accepted, Ingestor
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


class _FailsOnce(LogStore):
    """A real SQLite log store whose first append fails the way no store is
    expected to (a bug, say): not a StoreError."""

    failed = False

    def append(self, *args: Any, **kwargs: Any) -> list[int]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("an unforeseen failure")
        return super().append(*args, **kwargs)


def test_an_unforeseen_failure_answers_the_batch_and_the_sequencer_goes_on(
    tmp_path: Path,
) -> None:
    signer = SoftwareSigner.generate()
    entry = sign_reading(signer, seq=1, ts=1, sensor="t", value=1)
    store = _FailsOnce(SqliteBackend(tmp_path / "log.db"))
    log_signer = LogSigner.from_seed("example.com/log", bytes(32))

    async def lookup(call: Callable[[], Any]) -> Any:
        return call()

    ingestor = Ingestor(
        store=store,
        signer=log_signer,
        latest=LatestCheckpoint(log_signer, store.size, store.root()),
        directory=_RegisteredMidway(DeviceRecord("active", ((0, signer.public_key),))),  # type: ignore[arg-type]
        state=NodeState(tmp_path / "node.db"),
        verifier=BatchVerifier(None),
        metrics=Metrics(),
        clock_ms=lambda: 1,
        lookup=lookup,
    )

    async def scenario() -> tuple[list[Accepted | Problem], list[Accepted | Problem]]:
        sequencer = asyncio.create_task(ingestor.run())
        first = await asyncio.wait_for(ingestor.submit_many([entry]), 30)  # (never hangs)
        second = await asyncio.wait_for(ingestor.submit_many([entry]), 30)
        sequencer.cancel()
        return first, second

    directory = ingestor.directory
    directory.lookups = 1  # type: ignore[attr-defined]  # (registered already)
    first, second = asyncio.run(scenario())
    assert isinstance(first[0], Problem) and first[0].slug == "store-unavailable"
    assert isinstance(second[0], Accepted) and second[0].index == 0  # the retry is logged
