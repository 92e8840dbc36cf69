"""A table as published: it rebuilds to the same roots; an honest one holds no
provable value; a published document that is not a table is refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from tests.reputation.strategies import epoch_inputs, ref, subject
from trustmesh.errors import InvalidEvidence
from trustmesh.reputation import (
    Attestation,
    EpochInputs,
    Evidence,
    Kind,
    Params,
    Stake,
    compute_epoch,
)
from trustmesh.reputation.check import first_provable
from trustmesh.reputation.publish import published, rebuild


@settings(max_examples=40, deadline=None)
@given(epoch_inputs())
def test_an_honest_table_rebuilds_and_holds_nothing_provable(inputs: EpochInputs) -> None:
    table = compute_epoch(inputs)
    document = json.loads(json.dumps(published(table)))
    again = rebuild(document, Params())
    assert (again.score_root, again.state_root) == (table.score_root, table.state_root)
    assert document["score_root"] == table.score_root.hex()
    assert first_provable(table) is None and first_provable(again) is None


def _document() -> dict[str, Any]:
    inputs = EpochInputs(
        7,
        evidence=[Evidence(subject(1), Kind.READINGS_LOGGED, ref(1), 10)],
        attestations=[Attestation(subject(0), subject(1), ref(2))],
        stakes=[Stake(subject(0), 10**18, 30)],
    )
    return published(compute_epoch(inputs))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.pop("rows"),
        lambda d: d.update(epoch=-1),
        lambda d: d["rows"][0].update(subject="00"),
        lambda d: d["rows"][0].update(score=-5),
        lambda d: d["rows"][0].update(trust=["x"]),
        lambda d: d["rows"][0].pop("alpha"),
    ],
    ids=["no rows", "negative epoch", "short id", "negative score", "not a number", "missing"],
)
def test_a_malformed_publication_is_refused(spoil: Any) -> None:
    document = _document()
    spoil(document)
    with pytest.raises(InvalidEvidence, match="published"):
        rebuild(document, Params())
