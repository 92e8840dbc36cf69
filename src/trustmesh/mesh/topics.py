"""The mesh's topics and message ids (pure).

Every topic is versioned under ``/trustmesh/v1/``; a message is signed end to end
by whoever made what it carries (a device's readings, a log's checkpoints), so a
peer that relays it can drop it but not forge it. A message's id is the hash of
its bytes: the same message relayed by many peers is seen once.
"""

from __future__ import annotations

import hashlib

__all__ = ["CHECKPOINTS", "MAX_MESSAGE", "READINGS", "RECEIPTS", "RELAY", "TOPICS", "WITNESS",
           "message_id"]  # fmt: skip

READINGS = "/trustmesh/v1/readings"  # a CBOR sequence of readings: a device's batch
RECEIPTS = "/trustmesh/v1/receipts"  # a batch's receipts: one checkpoint, each path (receipts.py)
CHECKPOINTS = "/trustmesh/v1/checkpoints"  # a log's signed checkpoint (a C2SP note)
WITNESS = "/trustmesh/v1/witness"  # witness challenges and answers: readings (sensor witness)
TOPICS = (READINGS, RECEIPTS, CHECKPOINTS, WITNESS)
# Not a topic: a protocol, one request a stream. A device's batch (after a byte of
# relay hops left) asked of a peer that passes it on towards a node; its receipts
# messages (as on RECEIPTS) come back on the stream (trustmesh.mesh.relay).
RELAY = "/trustmesh/v1/relay"

# Under gossipsub's 1 MiB limit (larger messages are dropped silently there): a
# batch of ~2,500 ordinary readings.
MAX_MESSAGE = 512 * 1024


def message_id(data: bytes) -> bytes:
    """A message's id: the first 20 bytes of SHA-256 of its bytes."""
    return hashlib.sha256(data).digest()[:20]
