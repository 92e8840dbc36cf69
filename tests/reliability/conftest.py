"""The reliability suite uses the node tests' real processes, and its contract
state machines each an embedded chain of their own module."""

from collections.abc import Iterator

import pytest

from tests.node.conftest import start_node
from trustmesh.chain.embedded import EmbeddedChain

__all__ = ["chain", "start_node"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedChain]:
    """An embedded chain for one test module's state machine."""
    opened = EmbeddedChain.open(tmp_path_factory.mktemp("invariants") / "chain")
    yield opened
    opened.close()
