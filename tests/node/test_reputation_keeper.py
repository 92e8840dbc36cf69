"""The node's reputation keeper counts what its ingest hands over (the readings it
parsed, with their leaf hashes) and reads back from the log only what no batch
handed over: the tables are the same, root for root, as those of a keeper that
reads and parses its whole log, whichever batches were handed over."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.merkle import leaf_hash
from trustmesh.log.store import DeviceKey, LogStore, open_store
from trustmesh.node._reputation import ReputationKeeper
from trustmesh.node._state import NodeState
from trustmesh.reading import parse_reading, sign_reading
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
    entries = _entries()
    for number, start in enumerate(range(0, len(entries), BATCH)):
        batch = entries[start : start + BATCH]
        readings = [parse_reading(entry) for entry in batch]
        leaves = [leaf_hash(entry) for entry in batch]
        keys = [DeviceKey(r.did, r.seq) for r in readings]
        first = store.append(batch, keys, leaves)[0]
        if number not in unhanded:
            handed.logged(first, readings, leaves)
        if number % 3 == 2:  # the keepers step now and then, closing what is due
            now[0] = start * 40 + EPOCH_MS
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
