"""The node (gateway): HTTP and MQTT ingestion, receipts, epoch anchoring, and
proofs for anyone.

Run one with ``trustmesh node run``; the pieces:

- :mod:`trustmesh.node.app`: the HTTP API (ASGI), problem+json errors, C2SP tiles;
- ``_ingest``: parse → registry key → clock → signature (``_verify`` batches,
  ``_processes`` checks them on one worker process per core) →
  duplicate / replay / equivocation → batched append → one signed checkpoint per
  batch and a receipt (a C2SP tlog-proof in it) per reading (``_receipts``);
- ``_anchorer``: anchors the latest signed checkpoint every epoch, with retries;
- ``_mqtt``: the MQTT bridge; ``_devices``: the registry cache; ``_latest``: the
  latest signed checkpoint; ``_state``: evidence; ``_metrics``: Prometheus.
"""
