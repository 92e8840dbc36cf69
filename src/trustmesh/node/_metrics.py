"""Prometheus metrics of a node (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "trustmesh_readings_accepted",
            "Readings logged (or re-acknowledged)",
            registry=self.registry,
        )
        self.rejected = Counter(
            "trustmesh_readings_rejected",
            "Readings refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "trustmesh_ingest_queue_depth",
            "Verified readings waiting to be appended",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "trustmesh_append_batch_seconds",
            "Time to check and append one batch",
            registry=self.registry,
        )
        self.checkpoints_signed = Counter(
            "trustmesh_checkpoints_signed",
            "Checkpoints signed, one per committed batch: the receipts' trees",
            registry=self.registry,
        )
        self.tree_size = Gauge("trustmesh_tree_size", "Entries in the log", registry=self.registry)
        self.mesh_dropped = Counter(
            "trustmesh_mesh_dropped",
            "Mesh messages this node's peer dropped (never forwarded), by topic and kind",
            ["topic", "kind"],
            registry=self.registry,
        )
        self.anchored_size = Gauge(
            "trustmesh_anchored_size",
            "Entries covered by the last on-chain anchor",
            registry=self.registry,
        )
        self.anchor_lag = Gauge(
            "trustmesh_anchor_lag_entries",
            "Entries logged but not yet anchored",
            registry=self.registry,
        )
        self.anchor_failures = Counter(
            "trustmesh_anchor_failures", "Anchoring attempts that failed", registry=self.registry
        )
