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

The child starts as soon as the witness graph is known (:class:`LeafHasher`):
its part's in-edge and evidence digests need nothing more, so it hashes them
while this process iterates the trust; the scores follow it through a pipe.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType

import numpy as np
import numpy.typing as npt
import sha3

from trustmesh.reputation.columns import Exact, Ints
from trustmesh.reputation.row import evidence_digest
from trustmesh.reputation.vector import Graph, Scored

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

    @classmethod
    def of(cls, scored: Scored, lo: int, hi: int) -> _Late:
        return cls(
            scored.columns.epoch,
            np.ascontiguousarray(scored.trust[:, lo:hi]),
            scored.alpha[lo:hi],
            scored.beta[lo:hi],
            scored.score[lo:hi],
        )


class LeafHasher:
    """Hashes an epoch's leaves: started once its graph is known (a forked child
    begins on its part), finished with its scores (:meth:`finish`). A context
    manager: leaving it stops a child still running."""

    def __init__(self, graph: Graph, workers: int | None = None) -> None:
        n = len(graph.columns.subjects)
        self.graph = graph
        self.ids = np.frombuffer(b"".join(graph.columns.subjects), dtype=np.uint8).reshape(n, WORD)
        workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.depth, self.split = 0, n
        self._child: multiprocessing.process.BaseProcess | None = None
        if workers < 2 or n < PARALLEL_MIN:
            return
        self.depth = max(0, n.bit_length() - 6)  # parts join at multiples of 2**depth
        block = 1 << self.depth
        self.split = int(n * (1 - CHILD_SHARE)) // block * block
        context = multiprocessing.get_context("fork")  # the child reads the graph, unpickled
        self._results, results = context.Pipe(duplex=False)
        late, self._late = context.Pipe(duplex=False)
        self._child = context.Process(
            target=_child,
            args=(results, late, graph, self.ids, self.split, n, self.depth),
            daemon=True,
        )
        self._child.start()
        results.close()
        late.close()

    def finish(self, scored: Scored) -> Hashed:
        """Every subject's state and score leaf, and the inner nodes of each tree
        that lie wholly inside one part."""
        n = len(self.ids)
        split, depth = self.split, self.depth
        theirs: Hashed | None = None
        if self._child is not None:
            try:
                self._late.send(_Late.of(scored, split, n))
            except (BrokenPipeError, OSError):
                self.close()  # the child died (killed, out of memory): its part is done here
        mine = _hash_part(self.graph, self.ids, 0, split, depth, _Late.of(scored, 0, split))
        if self._child is not None:
            with contextlib.suppress(EOFError):  # (the child died: its part is done here)
                theirs = self._results.recv()
            self.close()
        if split < n and theirs is None:
            theirs = _hash_part(self.graph, self.ids, split, n, depth, _Late.of(scored, split, n))
        if theirs is None:
            return mine
        return (
            mine[0] + theirs[0],
            mine[1] + theirs[1],
            [a + b for a, b in zip(mine[2], theirs[2], strict=True)],
            [a + b for a, b in zip(mine[3], theirs[3], strict=True)],
        )

    def close(self) -> None:
        if self._child is not None:
            self._results.close()
            self._late.close()
            self._child.kill()
            self._child.join()
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
    results: Connection, late: Connection, graph: Graph, ids: Bytes, lo: int, hi: int, depth: int
) -> None:
    digests = _digests_of(graph, ids, lo, hi)
    results.send(_leaves(graph, ids, lo, hi, depth, late.recv(), digests))
    results.close()


def _hash_part(graph: Graph, ids: Bytes, lo: int, hi: int, depth: int, late: _Late) -> Hashed:
    """Subjects [lo, hi) (``lo`` a multiple of ``2**depth``); ``ids`` all subjects'."""
    return _leaves(graph, ids, lo, hi, depth, late, _digests_of(graph, ids, lo, hi))


def _digests_of(graph: Graph, ids: Bytes, lo: int, hi: int) -> tuple[Bytes, Bytes]:
    """The in-edge and the evidence digests of subjects [lo, hi)."""
    edges = np.zeros((hi - lo, WORD), dtype=np.uint8)
    evidence = np.zeros((hi - lo, WORD), dtype=np.uint8)
    for a in range(lo, hi, CHUNK):
        b = min(hi, a + CHUNK)
        edges[a - lo : b - lo] = _digests(*_edge_records(graph, ids, a, b))
        evidence[a - lo : b - lo] = _evidence_digests(graph, a, b)
    return edges, evidence


def _leaves(
    graph: Graph,
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
        record = _state_records(graph, ids, late, lo, a, b)
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


def _state_records(graph: Graph, ids: Bytes, late: _Late, lo: int, a: int, b: int) -> Bytes:
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
        (4, graph.staked_before[a:b]),
        (5, graph.pretrust[a:b]),
        (6, graph.out_weight[a:b]),
        (7, np.full(m, HEAD * WORD, dtype=np.int64)),  # the trust array's offset
        (9, late.alpha[a - lo : b - lo]),
        (10, late.beta[a - lo : b - lo]),
        (HEAD, np.full(m, steps, dtype=np.int64)),
    ):
        _put(record[:, column], slice(None), values)
    record.view(">u8")[:, HEAD + 1 :, 3] = late.trust[:, a - lo : b - lo].T
    return record


def _edge_records(graph: Graph, ids: Bytes, lo: int, hi: int) -> tuple[Bytes, Ints]:
    """``abi.encode(bytes32[] attesters, uint256[] weights)`` of each subject's kept
    in-edges, end to end, and each one's first word (with the end's)."""
    first, last = int(graph.edge_start[lo]), int(graph.edge_start[hi])
    k = np.diff(graph.edge_start[lo : hi + 1])
    start = np.r_[0, np.cumsum(4 + 2 * k)]
    words = np.zeros((int(start[-1]), WORD), dtype=np.uint8)
    at = start[:-1]
    _put(words, at, np.full(len(k), 2 * WORD, dtype=np.int64))
    _put(words, at + 1, 2 * WORD + WORD * (1 + k))
    _put(words, at + 2, k)
    _put(words, at + 3 + k, k)
    owner = graph.dst[first:last] - lo
    place = at[owner] + 3 + (np.arange(first, last) - graph.edge_start[graph.dst[first:last]])
    _rows(words)[place] = _rows(ids)[graph.src[first:last]]
    _put(words, place + 1 + k[owner], graph.weight[first:last])
    return words, start


def _rows(words: Bytes) -> npt.NDArray[np.void]:
    """32-byte rows as one item each (a gather or scatter of whole rows is one copy)."""
    rows: npt.NDArray[np.void] = words.view(np.dtype((np.void, WORD))).reshape(-1)
    return rows


def _evidence_digests(graph: Graph, lo: int, hi: int) -> Bytes:
    """``keccak256(abi.encode(uint256[] kinds, uint256[] counts, bytes32[] refs))`` of
    each subject's evidence items (:func:`~trustmesh.reputation.row.evidence_digest`)."""
    columns = graph.columns
    k = np.diff(graph.ev_start[lo : hi + 1])
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
    items = graph.ev_order[graph.ev_start[lo] : graph.ev_start[hi]]
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
