"""The reliability suite uses the node tests' real processes."""

from tests.node.conftest import start_node

__all__ = ["start_node"]
