"""Verifiable computation over readings (issue 14, under way): integer models
applied per reading (:mod:`~trustmesh.aggregate.model`)."""

from trustmesh.aggregate.model import ONE, Kind, Model

__all__ = ["ONE", "Kind", "Model"]
