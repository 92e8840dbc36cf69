"""Verifiable computation over readings (issue 14, under way): integer models
applied per reading (:mod:`~trustmesh.aggregate.model`), queries and their results
(:mod:`~trustmesh.aggregate.query`), and the Merkle-sum tree a claim commits
(:mod:`~trustmesh.aggregate.tree`)."""

from trustmesh.aggregate.model import ONE, Kind, Model
from trustmesh.aggregate.query import Query, Reduction
from trustmesh.aggregate.tree import Leaf, Node, Step, SumTree, check_path, root_from_path

__all__ = [
    "ONE",
    "Kind",
    "Leaf",
    "Model",
    "Node",
    "Query",
    "Reduction",
    "Step",
    "SumTree",
    "check_path",
    "root_from_path",
]
