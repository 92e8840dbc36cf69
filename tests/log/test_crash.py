"""A writer killed with SIGKILL in the middle of a batch loses no acknowledged
entry and leaves no torn tree, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

from trustmesh.log import merkle
from trustmesh.log.store import open_store

BATCH = 500

# Each entry is indexed as seq i of one device: the index is all or nothing too. On
# SQLite its keys move into runs every few batches: kills land before, in and after.
WRITER = """
import sys
from pathlib import Path
from trustmesh.log.store import DeviceKey, LogStore, SqliteBackend, open_store
where = sys.argv[1]
store = open_store(where) if "://" in where else LogStore(SqliteBackend(Path(where), 1200))
while True:
    start = store.size
    indices = range(start, start + {batch})
    store.append([b"entry %d " % i * 8 for i in indices], [DeviceKey("{did}", i) for i in indices])
    print(store.size, flush=True)   # acknowledged: the batch is committed
"""
DID = "did:key:zWriter"


def expected(index: int) -> bytes:
    return b"entry %d " % index * 8


def test_sigkill_mid_batch_loses_nothing_acknowledged(location: str) -> None:
    rng = random.Random(9162)
    acknowledged = 0
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER.format(batch=BATCH, did=DID), location],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        for _ in range(rng.randint(2, 8)):
            line = writer.stdout.readline()
            assert line, "the writer died on its own"
            acknowledged = int(line)
        os.kill(writer.pid, signal.SIGKILL)  # it is already busy with the next batch
        writer.wait()
        writer.stdout.close()

        store = open_store(location)
        assert store.size >= acknowledged
        assert store.size % BATCH == 0, "a batch is all or nothing"
        data = store.entries(0, store.size)
        assert data == [expected(i) for i in range(store.size)]
        leaves = [merkle.leaf_hash(entry) for entry in data]
        assert store.root() == merkle.root(leaves)
        index = rng.randrange(store.size)
        assert store.inclusion_proof(index) == merkle.inclusion_proof(leaves, index)
        assert store.find(DID, index) == index
        assert store.last_seq(DID) == store.size - 1
        assert [i for _, i in store.device_entries(DID, store.size)] == list(
            reversed(range(store.size))
        )
        store.close()
    assert acknowledged >= 3 * 2 * BATCH
