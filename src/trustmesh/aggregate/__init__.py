"""Verifiable computation over readings (issue 14, under way): integer models
applied per reading (:mod:`~trustmesh.aggregate.model`) and the Merkle-sum tree a
claim commits (:mod:`~trustmesh.aggregate.tree`)."""

from trustmesh.aggregate.model import ONE, Kind, Model
from trustmesh.aggregate.tree import Leaf, Node, Step, SumTree, check_path, root_from_path

__all__ = [
    "ONE",
    "Kind",
    "Leaf",
    "Model",
    "Node",
    "Step",
    "SumTree",
    "check_path",
    "root_from_path",
]
