"""An epoch's two trees from the vectorised engine's columns, on every core.

Each subject's state leaf holds two digests of variable-length encodings (its
kept in-edges, its evidence) and a fixed 30-word record; its score leaf a
3-word record (:mod:`~trustmesh.reputation.table` has the formats). The records
are laid out by numpy, a chunk of subjects at a time (small enough to stay in
cache), and only the hashing is a Python loop: about eight Keccak-256 calls a
subject, the bulk of committing a large table. So the subjects are split in two
at a multiple of ``2**depth``, and a forked child hashes the second part while
this process hashes the first: each part's leaves and the inner nodes wholly
inside it up to ``depth`` levels, the same nodes whichever process makes them.
What is left (the top levels, and the nodes on the right edge, where the score
tree's meta leaf joins) is made here
(:meth:`~trustmesh.reputation.merkle.MerkleTree.from_levels`).

The child starts as soon as the witness verdicts are tallied (:class:`LeafHasher`):
its part's evidence digests need nothing more, so it hashes them while this
process builds the witness graph; its part of the graph follows through a pipe,
and it hashes its in-edge digests while this process iterates the trust; then
the scores follow.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType

import numpy as np
import numpy.typing as npt
import sha3

from trustmesh.reputation.columns import Exact, Ints
from trustmesh.reputation.row import evidence_digest
from trustmesh.reputation.vector import Graph, Scored, Tally

__all__ = ["PARALLEL_MIN", "LeafHasher"]

WORD = 32
HEAD = 12  # the state leaf's head words; its trust array follows (length, values)
PARALLEL_MIN = 1 << 15  # fewer subjects than this are hashed in one process
CHUNK = 1 << 13  # subjects laid out at a time
CHILD_SHARE = 0.6  # of the subjects: the child starts early, so it takes more
Bytes = npt.NDArray[np.uint8]
# (state leaves, score leaves, state tree's complete levels 1..depth, score tree's),
# each level its 32-byte hashes end to end
Hashed = tuple[bytes, bytes, list[bytes], list[bytes]]


@dataclass(frozen=True)
class _Late:
    """What the scores add, for subjects [lo, hi) (indexed from 0)."""

    epoch: int
    trust: Ints  # (steps + 1, hi - lo)
    alpha: Exact
    beta: Exact
    score: Ints
    out_weight: Ints

    @classmethod
    def of(cls, scored: Scored, lo: int, hi: int) -> _Late:
        return cls(
            scored.columns.epoch,
            np.ascontiguousarray(scored.trust[:, lo:hi]),
            scored.alpha[lo:hi],
            scored.beta[lo:hi],
            scored.score[lo:hi],
            scored.out_weight[lo:hi],
        )


@dataclass(frozen=True)
class _Edges:
    """The kept in-edges of subjects [lo, hi): ``start[j - lo]`` is where j's begin
    in ``src``/``weight`` (``start[hi - lo]`` their count). Small types: a child is
    sent its part through a pipe while it waits."""

    lo: int
    start: Ints
    src: npt.NDArray[np.int32] | Ints
    weight: npt.NDArray[np.int16] | Ints

    @classmethod
    def of(cls, graph: Graph, lo: int, hi: int) -> _Edges:
        first, last = int(graph.edge_start[lo]), int(graph.edge_start[hi])
        src, weight = graph.src[first:last], graph.weight[first:last]
        if len(graph.pretrust) < 1 << 31:
            src = src.astype(np.int32)
        if len(weight) and int(weight.max()) < 1 << 15:
            weight = weight.astype(np.int16)
        return cls(lo, graph.edge_start[lo : hi + 1] - first, src, weight)


class LeafHasher:
    """Hashes an epoch's leaves: started once its verdicts are tallied (a forked
    child begins on its part's evidence digests), given the witness graph when it
    is built (:meth:`graph_built`: the child hashes its part's in-edges while this
    process iterates the trust), finished with the scores (:meth:`finish`). A
    context manager: leaving it stops a child still running."""

    def __init__(self, tallied: Tally, workers: int | None = None) -> None:
        n = len(tallied.columns.subjects)
        subjects = tallied.columns.subjects
        self.ids = np.frombuffer(b"".join(subjects), dtype=np.uint8).reshape(n, WORD)
        workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.depth, self.split = 0, n
        self._child: multiprocessing.process.BaseProcess | None = None
        self._sending: list[threading.Thread] = []
        if workers < 2 or n < PARALLEL_MIN:
            return
        self.depth = max(0, n.bit_length() - 6)  # parts join at multiples of 2**depth
        block = 1 << self.depth
        self.split = int(n * (1 - CHILD_SHARE)) // block * block
        context = multiprocessing.get_context("fork")  # the child reads the tally, unpickled
        self._results, results = context.Pipe(duplex=False)
        given, self._given = context.Pipe(duplex=False)
        self._child = context.Process(
            target=_child,
            args=(results, given, tallied, self.ids, self.split, n, self.depth),
            daemon=True,
        )
        self._child.start()
        results.close()
        given.close()

    def graph_built(self, graph: Graph) -> None:
        """Hand the child its part of the witness graph."""
        self._give(lambda: _Edges.of(graph, self.split, len(self.ids)))

    def finish(self, scored: Scored) -> Hashed:
        """Every subject's state and score leaf, and the inner nodes of each tree
        that lie wholly inside one part."""
        n, split, depth = len(self.ids), self.split, self.depth
        if self._child is not None and not self._sending:
            self.graph_built(scored)
        self._give(lambda: _Late.of(scored, split, n))
        mine = _hash_part(scored, self.ids, 0, split, depth, _Late.of(scored, 0, split))
        theirs: Hashed | None = None
        if self._child is not None:
            with contextlib.suppress(EOFError):  # (the child died: its part is done here)
                theirs = self._results.recv()
            self.close()
        if split < n and theirs is None:
            theirs = _hash_part(scored, self.ids, split, n, depth, _Late.of(scored, split, n))
        if theirs is None:
            return mine
        return (
            mine[0] + theirs[0],
            mine[1] + theirs[1],
            [a + b for a, b in zip(mine[2], theirs[2], strict=True)],
            [a + b for a, b in zip(mine[3], theirs[3], strict=True)],
        )

    def _give(self, make: Callable[[], object]) -> None:
        """Send the child ``make()`` from a thread (after what was given before: one
        message at a time on the pipe): the pipe takes it as fast as the child reads,
        and this process has its own part to hash meanwhile."""
        if self._child is None:
            return
        before = list(self._sending)

        def send() -> None:
            for thread in before:
                thread.join()
            with contextlib.suppress(OSError):  # (the child died: finish does its part)
                self._given.send(make())

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        self._sending.append(sender)

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.join()
            for sender in self._sending:
                sender.join()
            self._results.close()
            self._given.close()
            self._child = None

    def __enter__(self) -> LeafHasher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _child(
    results: Connection, given: Connection, tallied: Tally, ids: Bytes, lo: int, hi: int, depth: int
) -> None:
    evidence = _evidence_part(tallied, lo, hi)
    digests = (_edges_part(given.recv(), ids, lo, hi), evidence)
    results.send(_leaves(tallied, ids, lo, hi, depth, given.recv(), digests))
    results.close()


def _hash_part(graph: Graph, ids: Bytes, lo: int, hi: int, depth: int, late: _Late) -> Hashed:
    """Subjects [lo, hi) (``lo`` a multiple of ``2**depth``); ``ids`` all subjects'."""
    digests = (_edges_part(_Edges.of(graph, lo, hi), ids, lo, hi), _evidence_part(graph, lo, hi))
    return _leaves(graph, ids, lo, hi, depth, late, digests)


def _edges_part(edges: _Edges, ids: Bytes, lo: int, hi: int) -> Bytes:
    """The in-edge digests of subjects [lo, hi)."""
    digests = np.zeros((hi - lo, WORD), dtype=np.uint8)
    for a in range(lo, hi, CHUNK):
        b = min(hi, a + CHUNK)
        digests[a - lo : b - lo] = _digests(*_edge_records(edges, ids, a, b))
    return digests


def _evidence_part(tallied: Tally, lo: int, hi: int) -> Bytes:
    """The evidence digests of subjects [lo, hi)."""
    digests = np.zeros((hi - lo, WORD), dtype=np.uint8)
    for a in range(lo, hi, CHUNK):
        b = min(hi, a + CHUNK)
        digests[a - lo : b - lo] = _evidence_digests(tallied, a, b)
    return digests


def _leaves(
    tallied: Tally,
    ids: Bytes,
    lo: int,
    hi: int,
    depth: int,
    late: _Late,
    digests: tuple[Bytes, Bytes],
) -> Hashed:
    state: list[bytes] = []
    scores: list[bytes] = []
    for a in range(lo, hi, CHUNK):
        b = min(hi, a + CHUNK)
        record = _state_records(tallied, ids, late, lo, a, b)
        record[:, HEAD - 4] = digests[0][a - lo : b - lo]
        record[:, HEAD - 1] = digests[1][a - lo : b - lo]
        state += _leaf_hashes(record)
        score = np.zeros((b - a, 3, WORD), dtype=np.uint8)
        score[:, 0] = ids[a:b]
        _put(score[:, 1], slice(None), np.full(b - a, late.epoch, dtype=object))
        _put(score[:, 2], slice(None), late.score[a - lo : b - lo])
        scores += _leaf_hashes(score)
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


def _state_records(tallied: Tally, ids: Bytes, late: _Late, lo: int, a: int, b: int) -> Bytes:
    """The state leaves' encodings of subjects [a, b) (``late`` holds [lo, ...)'s),
    digests left zero (filled in by the caller)."""
    m, steps = b - a, late.trust.shape[0]
    record = np.zeros((m, HEAD + 1 + steps, WORD), dtype=np.uint8)
    record[:, 0] = ids[a:b]
    after = ids[a + 1 : b + 1]
    record[: len(after), 3] = after  # next: the id after it, zero after the last
    for column, values in (
        (1, np.full(m, late.epoch, dtype=object)),
        (2, np.arange(a, b, dtype=np.int64)),
        (4, tallied.staked_before[a:b]),
        (5, tallied.pretrust[a:b]),
        (6, late.out_weight[a - lo : b - lo]),
        (7, np.full(m, HEAD * WORD, dtype=np.int64)),  # the trust array's offset
        (9, late.alpha[a - lo : b - lo]),
        (10, late.beta[a - lo : b - lo]),
        (HEAD, np.full(m, steps, dtype=np.int64)),
    ):
        _put(record[:, column], slice(None), values)
    record.view(">u8")[:, HEAD + 1 :, 3] = late.trust[:, a - lo : b - lo].T
    return record


def _edge_records(edges: _Edges, ids: Bytes, a: int, b: int) -> tuple[Bytes, Ints]:
    """``abi.encode(bytes32[] attesters, uint256[] weights)`` of each subject's kept
    in-edges, subjects [a, b), end to end, and each one's first word (with the end's)."""
    first, last = int(edges.start[a - edges.lo]), int(edges.start[b - edges.lo])
    k = np.diff(edges.start[a - edges.lo : b - edges.lo + 1])
    start = np.r_[0, np.cumsum(4 + 2 * k)]
    words = np.zeros((int(start[-1]), WORD), dtype=np.uint8)
    at = start[:-1]
    _put(words, at, np.full(len(k), 2 * WORD, dtype=np.int64))
    _put(words, at + 1, 2 * WORD + WORD * (1 + k))
    _put(words, at + 2, k)
    _put(words, at + 3 + k, k)
    owner = np.repeat(np.arange(b - a), k)
    place = at[owner] + 3 + (np.arange(first, last) - edges.start[owner + a - edges.lo])
    _rows(words)[place] = _rows(ids)[edges.src[first:last]]
    _put(words, place + 1 + k[owner], edges.weight[first:last].astype(np.int64))
    return words, start


def _rows(words: Bytes) -> npt.NDArray[np.void]:
    """32-byte rows as one item each (a gather or scatter of whole rows is one copy)."""
    rows: npt.NDArray[np.void] = words.view(np.dtype((np.void, WORD))).reshape(-1)
    return rows


def _evidence_digests(tallied: Tally, lo: int, hi: int) -> Bytes:
    """``keccak256(abi.encode(uint256[] kinds, uint256[] counts, bytes32[] refs))`` of
    each subject's evidence items (:func:`~trustmesh.reputation.row.evidence_digest`)."""
    columns = tallied.columns
    k = np.diff(tallied.ev_start[lo : hi + 1])
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
    items = tallied.ev_order[tallied.ev_start[lo] : tallied.ev_start[hi]]
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
