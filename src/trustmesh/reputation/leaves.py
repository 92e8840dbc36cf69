"""An epoch's two trees from the vectorised engine's columns, on every core.

Each subject's state leaf holds two digests of variable-length encodings (its
kept in-edges, its evidence) and a fixed 30-word record; its score leaf a
3-word record (:mod:`~trustmesh.reputation.table` has the formats). The records
are laid out by numpy, many subjects at once, and only the hashing is a Python
loop: about eight Keccak-256 calls a subject, the bulk of committing a large
table. So the subjects are split in two at a multiple of ``2**depth`` and a
forked child hashes the second part while this process hashes the first: each
part's leaves and the inner nodes wholly inside it up to ``depth`` levels, the
same nodes whichever process makes them. What is left (the top levels, and the
nodes on the right edge, where the score tree's meta leaf joins) is made here
(:meth:`~trustmesh.reputation.merkle.MerkleTree.from_levels`).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from multiprocessing.connection import Connection

import numpy as np
import numpy.typing as npt
import sha3

from trustmesh.reputation.columns import Exact
from trustmesh.reputation.row import evidence_digest
from trustmesh.reputation.vector import Scored

__all__ = ["PARALLEL_MIN", "hash_leaves"]

WORD = 32
HEAD = 12  # the state leaf's head words; its trust array follows (length, values)
PARALLEL_MIN = 1 << 15  # fewer subjects than this are hashed in one process
Bytes = npt.NDArray[np.uint8]
# (state leaves, score leaves, state tree's complete levels 1..depth, score tree's),
# each level its 32-byte hashes end to end
Hashed = tuple[bytes, bytes, list[bytes], list[bytes]]


def hash_leaves(scored: Scored, epoch: int, workers: int | None = None) -> Hashed:
    """Every subject's state and score leaf, and the inner nodes of each tree that
    lie wholly inside one of the parts the subjects were split into."""
    n = len(scored.columns.subjects)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    depth = max(0, n.bit_length() - 6)  # parts join at multiples of 2**depth (n/32..n/64)
    ids = np.frombuffer(b"".join(scored.columns.subjects), dtype=np.uint8).reshape(n, WORD)
    if workers < 2 or n < PARALLEL_MIN:
        return _hash_range(scored, ids, epoch, 0, n, 0)
    block = 1 << depth
    split = (n // 2 + block // 2) // block * block
    context = multiprocessing.get_context("fork")  # the child reads the columns, unpickled
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(sender, scored, ids, epoch, split, n, depth), daemon=True
    )
    child.start()
    sender.close()
    mine = _hash_range(scored, ids, epoch, 0, split, depth)
    try:
        theirs = receiver.recv()
    except EOFError:  # the child died (killed, out of memory): hash its part here
        theirs = _hash_range(scored, ids, epoch, split, n, depth)
    finally:
        receiver.close()
        child.join()
    return (
        mine[0] + theirs[0],
        mine[1] + theirs[1],
        [a + b for a, b in zip(mine[2], theirs[2], strict=True)],
        [a + b for a, b in zip(mine[3], theirs[3], strict=True)],
    )


def _child(
    sender: Connection, scored: Scored, ids: Bytes, epoch: int, lo: int, hi: int, depth: int
) -> None:
    sender.send(_hash_range(scored, ids, epoch, lo, hi, depth))
    sender.close()


def _hash_range(scored: Scored, ids: Bytes, epoch: int, lo: int, hi: int, depth: int) -> Hashed:
    """Subjects [lo, hi) (``lo`` a multiple of ``2**depth``); ``ids`` all subjects'."""
    record = _state_records(scored, ids, epoch, lo, hi)
    record[:, HEAD - 4] = _digests(*_edge_records(scored, ids, lo, hi))
    record[:, HEAD - 1] = _evidence_digests(scored, lo, hi)
    state = _leaf_hashes(record)
    score = np.zeros((hi - lo, 3, WORD), dtype=np.uint8)
    score[:, 0] = ids[lo:hi]
    _put(score[:, 1], slice(None), np.full(hi - lo, epoch, dtype=object))
    _put(score[:, 2], slice(None), scored.score[lo:hi])
    scores = _leaf_hashes(score)
    return (
        b"".join(state),
        b"".join(scores),
        _complete_levels(state, depth),
        _complete_levels(scores, depth),
    )


def _put(words: Bytes, at: npt.NDArray[np.int64] | slice, values: Exact) -> None:
    """uint256 ``values`` (big-endian) into the zeroed 32-byte rows ``words[at]``."""
    if values.dtype != object or not len(values) or max(values) < 1 << 63:
        words.view(">u8")[at, 3] = values
        return
    rows = np.arange(len(words))[at]
    for row, value in zip(rows.tolist(), values.tolist(), strict=True):
        words[row] = np.frombuffer(value.to_bytes(WORD, "big"), dtype=np.uint8)


def _state_records(scored: Scored, ids: Bytes, epoch: int, lo: int, hi: int) -> Bytes:
    """The state leaves' encodings, digests left zero (filled in by the caller)."""
    m, steps = hi - lo, scored.trust.shape[0]
    record = np.zeros((m, HEAD + 1 + steps, WORD), dtype=np.uint8)
    record[:, 0] = ids[lo:hi]
    after = ids[lo + 1 : hi + 1]
    record[: len(after), 3] = after  # next: the id after it, zero after the last
    for column, values in (
        (1, np.full(m, epoch, dtype=object)),
        (2, np.arange(lo, hi, dtype=np.int64)),
        (4, scored.staked_before[lo:hi]),
        (5, scored.pretrust[lo:hi]),
        (6, scored.out_weight[lo:hi]),
        (7, np.full(m, HEAD * WORD, dtype=np.int64)),  # the trust array's offset
        (9, scored.alpha[lo:hi]),
        (10, scored.beta[lo:hi]),
        (HEAD, np.full(m, steps, dtype=np.int64)),
    ):
        _put(record[:, column], slice(None), values)
    record.view(">u8")[:, HEAD + 1 :, 3] = scored.trust[:, lo:hi].T
    return record


def _edge_records(
    scored: Scored, ids: Bytes, lo: int, hi: int
) -> tuple[Bytes, npt.NDArray[np.int64]]:
    """``abi.encode(bytes32[] attesters, uint256[] weights)`` of each subject's kept
    in-edges, end to end, and each one's first word (with the end's)."""
    first, last = int(scored.edge_start[lo]), int(scored.edge_start[hi])
    k = np.diff(scored.edge_start[lo : hi + 1])
    start = np.r_[0, np.cumsum(4 + 2 * k)]
    words = np.zeros((int(start[-1]), WORD), dtype=np.uint8)
    at = start[:-1]
    _put(words, at, np.full(len(k), 2 * WORD, dtype=np.int64))
    _put(words, at + 1, 2 * WORD + WORD * (1 + k))
    _put(words, at + 2, k)
    _put(words, at + 3 + k, k)
    owner = scored.dst[first:last] - lo
    place = at[owner] + 3 + (np.arange(first, last) - scored.edge_start[scored.dst[first:last]])
    _rows(words)[place] = _rows(ids)[scored.src[first:last]]
    _put(words, place + 1 + k[owner], scored.weight[first:last])
    return words, start


def _rows(words: Bytes) -> npt.NDArray[np.void]:
    """32-byte rows as one item each (a gather or scatter of whole rows is one copy)."""
    rows: npt.NDArray[np.void] = words.view(np.dtype((np.void, WORD))).reshape(-1)
    return rows


def _evidence_digests(scored: Scored, lo: int, hi: int) -> Bytes:
    """``keccak256(abi.encode(uint256[] kinds, uint256[] counts, bytes32[] refs))`` of
    each subject's evidence items (:func:`~trustmesh.reputation.row.evidence_digest`)."""
    columns = scored.columns
    k = np.diff(scored.ev_start[lo : hi + 1])
    digests = np.tile(np.frombuffer(evidence_digest(()), dtype=np.uint8), (hi - lo, 1))
    some = np.flatnonzero(k)
    if not len(some):
        return digests
    k = k[some]
    start = np.r_[0, np.cumsum(6 + 3 * k)]
    words = np.zeros((int(start[-1]), WORD), dtype=np.uint8)
    at = start[:-1]
    for i, offset in enumerate((0 * k + 3 * WORD, 4 * WORD + WORD * k, 5 * WORD + 2 * WORD * k)):
        _put(words, at + i, offset)
    for part in range(3):
        _put(words, at + 3 + part * (1 + k), k)
    items = scored.ev_order[scored.ev_start[lo] : scored.ev_start[hi]]
    owner = np.repeat(np.arange(len(k)), k)
    rank = np.arange(len(items)) - np.repeat(np.r_[0, np.cumsum(k)][:-1], k)
    base = at[owner] + 4 + rank
    _put(words, base, columns.ev_kind[items])
    _put(words, base + 1 + k[owner], columns.ev_count[items])
    _rows(words)[base + 2 * (1 + k[owner])] = _rows(np.ascontiguousarray(columns.ev_ref))[items]
    digests[some] = _digests(words, start)
    return digests


def _digests(words: Bytes, start: npt.NDArray[np.int64]) -> Bytes:
    """keccak256 of each encoding ``words[start[i]:start[i + 1]]``."""
    view = memoryview(words.reshape(-1).data)
    bounds = (start * WORD).tolist()
    keccak = sha3.keccak_256
    digests = [keccak(view[a:b]).digest() for a, b in itertools.pairwise(bounds)]
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), WORD)


def _leaf_hashes(records: Bytes) -> list[bytes]:
    """``keccak256(keccak256(record))`` of each row of ``records``."""
    size = records.shape[1] * WORD
    view = memoryview(records.reshape(-1).data)
    keccak = sha3.keccak_256
    return [keccak(keccak(view[a : a + size]).digest()).digest() for a in range(0, len(view), size)]


def _complete_levels(leaves: list[bytes], depth: int) -> list[bytes]:
    """Levels 1..depth of the tree over ``leaves``, each node whose leaves all lie
    in ``leaves`` (no carried node: that depends on what follows)."""
    keccak = sha3.keccak_256
    levels, below = [], leaves
    for _ in range(depth):
        below = [
            keccak(a + b if a < b else b + a).digest()
            for a, b in zip(below[0::2], below[1::2], strict=False)
        ]
        levels.append(b"".join(below))
    return levels
