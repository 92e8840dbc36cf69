"""MQTT ingestion: readings from ``trustmesh/v1/readings/#``, receipts to
``trustmesh/v1/receipts/<did>``, both QoS 1.

A message is acknowledged to the broker only once the node has answered it
(logged with a receipt published, or refused with a problem published), so a
node that dies mid-way leaves the reading with the broker to redeliver.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from trustmesh.errors import ChainError
from trustmesh.node._ingest import Accepted, Ingestor
from trustmesh.node._problems import Problem

log = logging.getLogger("trustmesh.node.mqtt")

READINGS_TOPIC = "trustmesh/v1/readings/#"
RECEIPTS_PREFIX = "trustmesh/v1/receipts/"
QOS = 1


def parse_mqtt_url(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
        raise ChainError(f"--mqtt wants mqtt://host:port, not {url!r}")
    return parsed.hostname, parsed.port or 1883


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
        payload, mid, qos = bytes(message.payload), message.mid, message.qos
        future = asyncio.run_coroutine_threadsafe(self.ingestor.submit(payload), self.loop)

        def answer(done: Future[Accepted]) -> None:
            try:
                accepted = done.result()
            except Problem as problem:
                did, document = topic_did, problem.to_json()
            except Exception:  # never let one message stop the bridge
                log.exception("MQTT: unexpected error")
                did, document = (
                    topic_did,
                    Problem("store-unavailable", "internal error; resend").to_json(),
                )
            else:
                did, document = accepted.did, accepted.to_json(self.ingestor.origin)
            client.publish(RECEIPTS_PREFIX + did, json.dumps(document), qos=QOS)
            client.ack(mid, qos)

        future.add_done_callback(answer)
