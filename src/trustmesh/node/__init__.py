"""The node (gateway): HTTP and MQTT ingestion, receipts, epoch anchoring, and
proofs for anyone.

Run one with ``trustmesh node run``; the pieces:

- :mod:`trustmesh.node.app`: the HTTP API (ASGI), problem+json errors, C2SP tiles;
- ``_ingest``: parse → registry key → clock → signature (process pool) →
  duplicate / replay / equivocation → batched append → signed receipt;
- ``_anchorer``: a signed checkpoint every epoch, anchored on-chain with retries;
- ``_mqtt``: the MQTT bridge; ``_devices``: the registry cache;
  ``_state``: deadlines and evidence; ``_metrics``: Prometheus.
"""
