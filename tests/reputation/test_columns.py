"""The vectorised engine at scale: an epoch given as columns, its leaves hashed in
two processes, gives the table one process gives; malformed columns are refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from trustmesh.bench.reputation import population, population_columns
from trustmesh.errors import InvalidEvidence
from trustmesh.reputation import Kind, Params, compute_epoch, vector
from trustmesh.reputation.leaves import PARALLEL_MIN, LeafHasher
from trustmesh.reputation.merkle import MerkleTree, check_proof
from trustmesh.reputation.table import compute_columns
from trustmesh.reputation.trust import iterate_edges
from trustmesh.reputation.vector import build_graph, score_columns, score_graph, tally


def test_two_processes_hash_the_table_one_process_hashes() -> None:
    columns = population_columns(PARALLEL_MIN + 1_234, 4)
    one = compute_columns(columns, Params(), workers=1)
    two = compute_columns(columns, Params(), workers=2)
    assert (two.score_root, two.state_root) == (one.score_root, one.state_root)
    for subject in (columns.subjects[0], columns.subjects[PARALLEL_MIN // 2], columns.subjects[-1]):
        row = two.rows[subject]
        assert two.score_proof(subject) == one.score_proof(subject)
        check_proof(two.state_proof(subject), two.state_root, row.state_leaf(columns.epoch))
    check_proof(two.meta_proof(), two.score_root, two.meta_leaf)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 33, 100])
def test_a_tree_from_levels_made_in_parts_is_the_tree(size: int) -> None:
    leaves = [bytes([i % 256, i // 256]) * 16 for i in range(size)]
    whole = MerkleTree(leaves)
    below, made = leaves[: size - size % 4], []  # the complete nodes of a prefix, two levels
    for _ in range(2):
        below = [MerkleTree(below[i : i + 2]).root for i in range(0, len(below) - 1, 2)]
        made.append(b"".join(below))
    tree = MerkleTree.from_levels(b"".join(leaves), made)
    assert tree.root == whole.root and len(tree) == len(whole) == size
    assert [tree.proof(i) for i in range(size)] == [whole.proof(i) for i in range(size)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {"subjects": list(reversed(c.subjects))}, "sorted and unique"),
        (lambda c: {"subjects": [b"short", *c.subjects[1:]]}, "32 bytes"),
        (lambda c: {"witness": c.witness + len(c.subjects)}, "witness is not in"),
        (lambda c: {"reading": c.reading[:-1]}, "attestation columns differ"),
        (lambda c: {"ev_kind": np.full_like(c.ev_kind, int(Kind.WITNESSED))}, "from attestations"),
        (lambda c: {"ev_kind": np.full_like(c.ev_kind, 99)}, "unknown evidence kind 99"),
        (lambda c: {"ev_count": np.zeros_like(c.ev_count)}, "counts 1 to"),
        (lambda c: {"stake": -c.stake}, "negative"),
        (lambda c: {"alpha": c.alpha[:-1]}, "one value a subject"),
    ],
)
def test_malformed_columns_are_refused_by_name(change: Any, message: str) -> None:
    columns = population_columns(50, 4)
    with pytest.raises(InvalidEvidence, match=message):
        dataclasses.replace(columns, **change(columns))


def test_the_iteration_split_among_threads_gives_the_same_steps() -> None:
    scored = score_columns(population_columns(3_000, 16), Params())
    graph = (scored.pretrust, scored.src, scored.dst, scored.weight, scored.out_weight)
    one = iterate_edges(*graph, Params(), threads=1)
    assert np.array_equal(iterate_edges(*graph, Params(), threads=3), one)
    assert np.array_equal(one, scored.trust) and one[-1].any()


def test_a_hashing_child_that_dies_leaves_its_part_to_the_parent() -> None:
    columns = population_columns(PARALLEL_MIN + 99, 4)
    whole = compute_columns(columns, Params(), workers=1)
    graph = build_graph(tally(columns, Params()), Params())
    with LeafHasher(graph, workers=2) as hasher:
        assert hasher._child is not None and 0 < hasher.split < len(columns.subjects)
        hasher._child.kill()  # (as the kernel's OOM killer would)
        hasher._child.join()
        state, score, _, _ = hasher.finish(score_graph(graph, Params()))
    assert MerkleTree.from_levels(state, []).root == whole.state_root
    assert len(score) == 32 * len(columns.subjects)


def test_the_tally_split_between_threads_gives_the_reference_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = population(300, 12)
    monkeypatch.setattr(vector, "THREADED", 1)  # (split however few attestations there are)
    split = compute_epoch(inputs, engine="numpy")
    assert split.score_root == compute_epoch(inputs, engine="reference").score_root
