"""The AggregateModel contract evaluates every model exactly as the Python side
does (hypothesis over models and inputs, on the embedded chain), commits a model
to the same hash, and refuses (reverts on) what the Python side refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aggregate.strategies import SMALL, trees
from trustmesh.aggregate import Model
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.errors import InvalidAggregate, Reverted


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainClient]:
    chain = EmbeddedChain.open(Path(tmp_path_factory.mktemp("model")) / "chain")
    yield ChainClient(chain.w3, chain.dev_accounts[0])
    chain.close()


@pytest.fixture(scope="module")
def evaluator(client: ChainClient) -> Any:
    return client.contract(load_contract("AggregateModel"), client.deploy("AggregateModel"))


@st.composite
def models(draw: st.DrawFn) -> Model:
    kind = draw(st.sampled_from(["identity", "threshold", "linear", "logistic", "tree"]))
    if kind == "identity":
        return Model.identity()
    if kind == "threshold":
        return Model.threshold(draw(SMALL))
    if kind == "tree":
        return Model.tree(*draw(trees()))
    make = Model.linear if kind == "linear" else Model.logistic
    return make(draw(SMALL), draw(SMALL), draw(st.integers(0, 255)))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(models(), SMALL)
def test_the_contract_evaluates_as_python_does(evaluator: Any, model: Model, value: int) -> None:
    params = list(model.params)
    assert evaluator.functions.evaluate(int(model.kind), params, value).call() == model.apply(value)
    assert bytes(evaluator.functions.model_hash(int(model.kind), params).call()) == model.hash


def test_what_python_refuses_the_contract_reverts(client: ChainClient, evaluator: Any) -> None:
    model = Model.linear(1 << 200, 0, 0)
    with pytest.raises(InvalidAggregate):
        model.apply(1 << 100)
    with pytest.raises(Reverted):
        client.call(evaluator.functions.evaluate(2, list(model.params), 1 << 100))
    for kind, params, reason in (
        (1, [], "threshold takes 1"),
        (2, [1, 2, 256], "shift out of range"),
        (4, [1, 0, 0, -1, 5], "a child is a later node"),  # a loop
        (4, [1, 0, -1, -3, 5], "no such leaf"),
        (9, [], "unknown kind"),
    ):
        with pytest.raises(Reverted, match=reason):
            client.call(evaluator.functions.evaluate(kind, params, 0))
