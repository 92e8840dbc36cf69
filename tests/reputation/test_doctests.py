"""The examples in the reputation modules' docstrings run, and say what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import trustmesh.reputation
from trustmesh.reputation import beta, merkle, observe


@pytest.mark.parametrize("module", [trustmesh.reputation, beta, merkle, observe], ids=str)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0
    assert result.attempted > 0, f"{module.__name__} shows no example"
