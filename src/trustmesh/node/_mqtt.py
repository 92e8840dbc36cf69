"""MQTT ingestion: readings from ``trustmesh/v1/readings/#``, receipts to
``trustmesh/v1/receipts/<did>``, both QoS 1.

A message holds one reading, answered with one JSON object (its receipt, or a
problem), or a CBOR sequence of several (a device's batch), answered with one
JSON array of those, in order. A problem carries the ``leaf_hash`` of the bytes
it refused, so that a device can tell which reading it is about.

A message is acknowledged to the broker only once the node has answered it
(logged with a receipt published, or refused with a problem published), so a
node that dies mid-way leaves the reading with the broker to redeliver. Acks
go out in the order the messages came (MQTT-4.6.0-2) even when a later batch
is answered first: a broker that sees acks out of order may deliver what it
queued out of order too (Mosquitto does), and a device's readings must reach
the log in seq order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from trustmesh._problems import Problem
from trustmesh.errors import ChainError
from trustmesh.log.merkle import leaf_hash
from trustmesh.node._cborseq import split_cbor_sequence
from trustmesh.node._ingest import Accepted, Ingestor

log = logging.getLogger("trustmesh.node.mqtt")

READINGS_TOPIC = "trustmesh/v1/readings/#"
GATHER_SECONDS = 0.002  # messages arriving within this are checked and logged as one batch
RECEIPTS_PREFIX = "trustmesh/v1/receipts/"
QOS = 1


def parse_mqtt_url(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
        raise ChainError(f"--mqtt wants mqtt://host:port, not {url!r}")
    return parsed.hostname, parsed.port or 1883


@dataclass
class _Delivery:
    """A message taken from the broker, acknowledged once it and all before it are answered."""

    mid: int
    qos: int
    answered: bool = False


class MqttBridge:
    def __init__(self, url: str, ingestor: Ingestor, loop: asyncio.AbstractEventLoop) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self.ingestor = ingestor
        self.loop = loop
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"trustmesh-node-{uuid.uuid4().hex[:12]}",
            manual_ack=True,
        )
        self._lock = threading.Lock()
        self._pending: list[tuple[bytes, int, int, str]] = []
        self._unacked: deque[_Delivery] = deque()  # arrival order; used on the event loop only
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        client.subscribe(READINGS_TOPIC, qos=QOS)
        log.info("MQTT: subscribed to %s on %s:%d", READINGS_TOPIC, self.host, self.port)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic_did = message.topic.rsplit("/", 1)[-1] if message.topic.count("/") >= 3 else "unknown"
        item = (bytes(message.payload), message.mid, message.qos, topic_did)
        with self._lock:
            self._pending.append(item)
            first = len(self._pending) == 1
        if first:  # gather what arrives in the next moments into one batch
            asyncio.run_coroutine_threadsafe(self._flush_soon(), self.loop)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(GATHER_SECONDS)
        with self._lock:
            batch, self._pending = self._pending, []
        deliveries = [_Delivery(mid, qos) for _, mid, qos, _ in batch]
        self._unacked.extend(deliveries)  # batches are taken in arrival order
        messages: list[list[bytes] | Problem] = []
        items: list[bytes] = []
        decoded: list[Any] = []
        for payload, _, _, _ in batch:
            try:
                parts, values = split_cbor_sequence(payload)
            except Problem as problem:
                messages.append(problem)
                continue
            messages.append(parts)
            items += parts
            decoded += values
        try:
            outcomes = await self.ingestor.submit_many(items, decoded) if items else []
        except Exception:  # never let one batch stop the bridge
            log.exception("MQTT: unexpected error")
            outcomes = [Problem("store-unavailable", "internal error; resend")] * len(items)
        answers = iter(outcomes)
        for (payload, _, _, topic_did), message, delivery in zip(
            batch, messages, deliveries, strict=True
        ):
            document: dict[str, Any] | list[dict[str, Any]]
            if isinstance(message, Problem):
                did, document = topic_did, _refusal(message, payload)
            else:
                documents = [self._answer(part, next(answers)) for part in message]
                did = next((str(d["did"]) for d in documents if "did" in d), topic_did)
                document = documents[0] if len(documents) == 1 else documents
            self.client.publish(RECEIPTS_PREFIX + str(did), orjson.dumps(document), qos=QOS)
            delivery.answered = True
        while self._unacked and self._unacked[0].answered:
            done = self._unacked.popleft()
            self.client.ack(done.mid, done.qos)

    def _answer(self, item: bytes, outcome: Accepted | Problem) -> dict[str, Any]:
        if isinstance(outcome, Accepted):
            return outcome.to_json(self.ingestor.origin)
        return _refusal(outcome, item)


def _refusal(problem: Problem, item: bytes) -> dict[str, Any]:
    """A problem named by the leaf hash of what was sent, so a device can tell which."""
    return {**problem.to_json(), "leaf_hash": leaf_hash(item).hex()}
