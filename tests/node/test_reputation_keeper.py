"""The node's reputation keeper counts what its ingest hands over (the readings it
parsed, with their leaf hashes, packed) and reads back from the log only what no batch
handed over: the tables are the same, root for root, as those of a keeper that
reads and parses its whole log, whichever batches were handed over."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.merkle import leaf_hash
from trustmesh.log.store import DeviceKey, LogStore, open_store
from trustmesh.node._reputation import ReputationKeeper
from trustmesh.node._state import NodeState
from trustmesh.reading import Reading, parse_reading, sign_reading
from trustmesh.reputation import Evidence, Stake
from trustmesh.reputation.witness import challenge_fields, witness_fields

EPOCH_MS = 1_000
BATCH = 7


def _facts(
    dids: list[str], origins: list[str], block: int, epoch: int
) -> tuple[Sequence[Stake], Sequence[Evidence]]:
    return [], []


def _entries() -> list[bytes]:
    """Three devices over four epochs, with a gap in one's seqs, a clock that goes
    back, and a challenge answered by two witnesses (kept whole, for the witnessing)."""
    signers = [SoftwareSigner.generate() for _ in range(3)]
    entries = [
        sign_reading(signers[i % 3], seq=i // 3 + 1 + (i > 40), ts=i * 40, sensor="t", value=i)
        for i in range(90)
    ]
    entries.append(sign_reading(signers[0], seq=100, ts=2_000, sensor="t", value=-1))
    entries.append(sign_reading(signers[0], seq=101, ts=1_990, sensor="t", value=-2))
    challenge = sign_reading(
        signers[2], seq=200, ts=2_500, sensor="challenge", value=20.0,
        extra=challenge_fields((0, 0)),
    )  # fmt: skip
    entries.append(challenge)
    challenger = str(did_from_key(signers[2].public_key))
    for i in (0, 1):
        extra = witness_fields(challenge, challenger, (10 * i, 0))
        entries.append(
            sign_reading(signers[i], seq=300, ts=2_600, sensor="witness", value=20.5, extra=extra)
        )
    return entries


def _keeper(
    store: LogStore, state: Path, now: list[int], scratch: Path | None = None
) -> ReputationKeeper:
    return ReputationKeeper(
        store=store,
        origin="example.com/log",
        state=NodeState(state),
        facts=_facts,
        current_block=lambda: 1,
        epoch_ms=EPOCH_MS,
        clock_ms=lambda: now[0],
        scratch=scratch,
    )


def _logged(
    store: LogStore, entries: list[bytes]
) -> Iterator[tuple[int, int, list[Reading], list[bytes]]]:
    """Append ``entries`` in batches; each batch's number, first index, readings
    and leaf hashes, once appended (what the ingest hands over)."""
    for number, start in enumerate(range(0, len(entries), BATCH)):
        batch = entries[start : start + BATCH]
        readings = [parse_reading(entry) for entry in batch]
        leaves = [leaf_hash(entry) for entry in batch]
        keys = [DeviceKey(r.did, r.seq) for r in readings]
        yield number, store.append(batch, keys, leaves)[0], readings, leaves


@pytest.mark.parametrize("unhanded", [(), (0,), (3, 4), (12,)])
def test_handed_batches_make_the_tables_the_whole_log_makes(
    tmp_path: Path, unhanded: tuple[int, ...]
) -> None:
    """Batches ``unhanded`` (by number) are logged and never handed over: as after
    a restart, or an append whose answer was lost."""
    store = open_store(tmp_path / "log.db")
    now = [0]
    handed = _keeper(store, tmp_path / "handed.db", now, tmp_path / "scratch.db")  # on disk
    read = _keeper(store, tmp_path / "read.db", now)
    for number, first, readings, leaves in _logged(store, _entries()):
        if number not in unhanded:
            handed.logged(first, readings, leaves)
        if number % 3 == 2:  # the keepers step now and then, closing what is due
            now[0] = first * 40 + EPOCH_MS
            assert handed.step() == read.step()
    now[0] = 10 * EPOCH_MS
    assert handed.step() == read.step() != []
    assert [cut.epoch for cut in handed.cuts()] == list(range(9))  # (4-8 without readings)
    for cut in handed.cuts():
        ours, theirs = handed.epoch(cut.epoch), read.epoch(cut.epoch)
        assert ours is not None and theirs is not None
        assert ours[0] == theirs[0]  # the same cut
        assert ours[1].score_root == theirs[1].score_root
        assert ours[1].rows == theirs[1].rows
    handed.stop()
    store.close()


@pytest.mark.parametrize("read_ahead", [3, BATCH])
def test_what_the_keeper_read_from_the_log_already_counts_once(
    tmp_path: Path, read_ahead: int
) -> None:
    """Closing an epoch reads the log up to its size, which may hold batches not
    handed over yet, and (after a failure) part of one: when they come, only what
    was not read is counted."""
    store = open_store(tmp_path / "log.db")
    now = [0]
    handed = _keeper(store, tmp_path / "handed.db", now)
    read = _keeper(store, tmp_path / "read.db", now)
    entries = _entries()
    for number, first, readings, leaves in _logged(store, entries):
        if number == 2:  # batches 0 and 1 wait, handed over; 2 is read ahead of them
            handed.follower.feed_up_to(
                handed.origin, first + read_ahead, lambda _, a, b: store.entries(a, b)
            )
        handed.logged(first, readings, leaves)
    now[0] = 10 * EPOCH_MS
    assert handed.step() == read.step() != []
    assert handed.follower.sizes == read.follower.sizes == {handed.origin: len(entries)}
    for cut in handed.cuts():
        ours, theirs = handed.epoch(cut.epoch), read.epoch(cut.epoch)
        assert ours is not None and theirs is not None
        assert ours[1].score_root == theirs[1].score_root
        assert ours[1].rows == theirs[1].rows
    store.close()
