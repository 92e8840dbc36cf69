"""The device's durable seq counter: never reused across restarts, crashes or
concurrent signers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from trustmesh.device import Device, SeqCounter
from trustmesh.errors import SeqCounterError
from trustmesh.identity import SoftwareSigner
from trustmesh.reading import verify_reading

DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"


def test_starts_at_one_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    assert SeqCounter(path, DID).peek() == 1
    assert [SeqCounter(path, DID).reserve() for _ in range(3)] == [1, 2, 3]
    assert SeqCounter(path, DID).peek() == 4
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def _reserve_many(path: str, count: int) -> list[int]:
    counter = SeqCounter(Path(path), DID)
    return [counter.reserve() for _ in range(count)]


def test_concurrent_processes_never_get_the_same_seq(tmp_path: Path) -> None:
    path = str(tmp_path / "seq")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        batches = pool.starmap(_reserve_many, [(path, 25)] * 4)
    seqs = [seq for batch in batches for seq in batch]
    assert sorted(seqs) == list(range(1, 101))


def test_a_killed_process_never_causes_reuse(tmp_path: Path) -> None:
    """Kill a process that reserves as fast as it can; every seq it reported
    having reserved is below what the counter hands out next."""
    path = tmp_path / "seq"
    script = (
        "import sys; from pathlib import Path; from trustmesh.device import SeqCounter\n"
        f"c = SeqCounter(Path({str(path)!r}), {DID!r})\n"
        "while True:\n"
        "    print(c.reserve(), flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported = [int(proc.stdout.readline()) for _ in range(50)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert SeqCounter(path, DID).peek() > max(reported)


def test_counter_belongs_to_one_device(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    SeqCounter(path, DID).reserve()
    with pytest.raises(SeqCounterError, match="counts seqs for"):
        SeqCounter(path, "did:key:zDnother").reserve()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        json.dumps({"did": DID}).encode(),
        json.dumps({"did": DID, "last_seq": -1}).encode(),
    ],
)
def test_corrupt_counter_is_refused_not_reset(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "seq"
    path.write_bytes(content)
    with pytest.raises(SeqCounterError, match="corrupt|not a valid seq"):
        SeqCounter(path, DID).reserve()
    assert path.read_bytes() == content


def test_exhausted_counter(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    path.write_text(json.dumps({"did": DID, "last_seq": 2**64 - 1}))
    with pytest.raises(SeqCounterError, match="exhausted"):
        SeqCounter(path, DID).reserve()


def test_unwritable_location(tmp_path: Path) -> None:
    with pytest.raises(SeqCounterError, match="cannot lock"):
        SeqCounter(tmp_path / "missing-dir" / "seq", DID).reserve()


def test_device_signs_with_increasing_seq_and_its_clock(tmp_path: Path) -> None:
    ticks = iter(range(1000, 2000, 10))
    device = Device(SoftwareSigner.generate(), tmp_path / "seq", clock=lambda: next(ticks))
    readings = [verify_reading(device.sign("temp", 20 + i, unit="C")) for i in range(3)]
    assert [(r.seq, r.ts, r.value) for r in readings] == [
        (1, 1000, 20),
        (2, 1010, 21),
        (3, 1020, 22),
    ]
    restarted = Device(device.signer, tmp_path / "seq")
    assert verify_reading(restarted.sign("temp", 1)).seq == 4
