"""The device tests run real nodes: the node tests' fixture."""

from tests.node.conftest import start_node

__all__ = ["start_node"]
