"""An epoch's records: spilled to disk they read back as kept in memory, and the
evidence made from them (in numpy) is what the definition says, reading by
reading."""

from __future__ import annotations

import hashlib
import itertools
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmesh.errors import StoreError
from trustmesh.reputation import Evidence, Kind
from trustmesh.reputation.observe import _device_evidence
from trustmesh.reputation.records import MemoryRecords, SpilledRecords

RECORD = struct.Struct(">QQ32s")
SUBJECT = bytes(32)

records = st.lists(
    st.tuples(
        st.integers(0, 40),  # seqs collide: copies and equivocations
        st.integers(0, 2**64 - 1),
        st.sampled_from([b"", b"\x00", b"\x00\x00\x00"]).flatmap(
            lambda tail: st.binary(min_size=32 - len(tail), max_size=32 - len(tail)).map(
                lambda head: head + tail  # hashes ending in zero bytes sort as bytes do
            )
        ),
    ),
    max_size=60,
)


def reference(
    subject: bytes, rows: list[tuple[int, int, bytes]], asked: list[int]
) -> tuple[list[Evidence], list[bytes]]:
    """The definition, one reading at a time: each seq's first reading counts."""
    readings: dict[int, tuple[int, bytes]] = {}
    for seq, ts, digest in rows:
        readings.setdefault(seq, (ts, digest))
    hashes = sorted(digest for _, digest in readings.values())
    found = [
        Evidence(
            subject, Kind.READINGS_LOGGED, hashlib.sha256(b"".join(hashes)).digest(), len(hashes)
        )
    ]
    ordered = sorted(readings.items())
    for (seq, (ts, _)), (next_seq, (next_ts, digest)) in itertools.pairwise(ordered):
        if next_seq > seq + 1:
            found.append(Evidence(subject, Kind.SEQ_GAP, digest))
        if next_ts < ts:
            found.append(Evidence(subject, Kind.CLOCK_DRIFT, digest))
    return found, [readings[seq][1] for seq in asked if seq in readings]


@given(records.filter(bool), st.lists(st.integers(0, 45), max_size=5))
def test_the_evidence_of_a_device_is_its_definition(
    rows: list[tuple[int, int, bytes]], asked: list[int]
) -> None:
    packed = b"".join(RECORD.pack(*row) for row in rows)
    assert _device_evidence(SUBJECT, packed, asked) == reference(SUBJECT, rows, asked)


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 3),
            st.sampled_from("abcd"),
            st.binary(min_size=1, max_size=48),
        ),
        st.tuples(st.just("forget"), st.integers(0, 3)),
    ),
    max_size=80,
)


@settings(max_examples=50)
@given(operations, st.integers(1, 200))
def test_spilled_records_read_back_as_kept_in_memory(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[object, ...]], buffer_bytes: int
) -> None:
    path = tmp_path_factory.mktemp("records") / "spilled.db"
    memory, spilled = MemoryRecords(), SpilledRecords(path, buffer_bytes=buffer_bytes)
    try:
        for step in steps:
            for kept in (memory, spilled):
                if step[0] == "add":
                    _, epoch, did, record = step
                    assert isinstance(epoch, int) and isinstance(did, str)
                    assert isinstance(record, bytes)
                    kept.add(epoch, did, record)
                else:
                    assert isinstance(step[1], int)
                    kept.forget(step[1])
            assert spilled.epochs() == memory.epochs()
        for epoch in range(4):
            assert list(spilled.devices(epoch)) == list(memory.devices(epoch))
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    finally:
        spilled.close()


def test_a_full_disk_loses_no_record_and_forgetting_still_works(tmp_path: Path) -> None:
    """SQLite's own page limit stands in for the disk: SQLITE_FULL either way."""
    spilled, memory = SpilledRecords(tmp_path / "spilled.db", buffer_bytes=96), MemoryRecords()
    for kept in (spilled, memory):
        kept.add(1, "a", b"x" * 96)  # spilled
    pages = spilled._db.execute("PRAGMA page_count").fetchone()[0]
    spilled._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    refusals = []
    for i in range(500):  # every add past the first full page is refused, and held
        record = bytes([i % 256]) * 96
        memory.add(2, f"d{i % 7}", record)
        try:
            spilled.add(2, f"d{i % 7}", record)
        except StoreError as exc:
            refusals.append(str(exc))
    assert refusals and all("database or disk is full" in why for why in refusals)
    spilled.forget(1)  # deleting may fail: it does not raise
    memory.forget(1)
    spilled._db.execute(f"PRAGMA max_page_count = {pages * 1000}")  # space again
    memory.add(2, "e", b"y" * 96)
    spilled.add(2, "e", b"y" * 96)  # spills everything held since
    assert spilled.epochs() == memory.epochs() == [2]
    assert list(spilled.devices(2)) == list(memory.devices(2))
    assert list(spilled.devices(1)) == []
    spilled.close()
