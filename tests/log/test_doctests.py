"""The examples in the log modules' docstrings run, and say what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from trustmesh.log import checkpoint, compact, merkle, note, note_p256, receipt, tlog_proof


@pytest.mark.parametrize(
    "module", [checkpoint, compact, merkle, note, note_p256, receipt, tlog_proof], ids=str
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0
    assert result.attempted > 0, f"{module.__name__} shows no example"
