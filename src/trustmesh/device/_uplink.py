"""Sending readings to nodes: the outbox drained in batches, over HTTP or MQTT,
to the first node that answers; each receipt (a tlog-proof: the reading's
inclusion in a checkpoint the node signed) verified with that node's log key
before the reading leaves the outbox, then forwarded to watchers.

A route is a node's URL (HTTP), or :class:`MqttRoute`: a broker the node
ingests from (a batch published QoS 1 as one CBOR sequence on
``trustmesh/v1/readings/<did>``, its receipts read from
``trustmesh/v1/receipts/<did>``) and the node's URL, where its log key is read.

A node that cannot be reached, answers 429/5xx, or returns a receipt that does
not verify is skipped for this round (the next node is tried at once), and a
round where no node took anything backs off exponentially (tenacity's wait
policy), so a partitioned device neither spins nor gives up.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import wait_exponential

from trustmesh.device._answers import gather
from trustmesh.device._device import Device
from trustmesh.device._mesh import MESH, MeshLink, MeshRoute
from trustmesh.device._outbox import Outbox
from trustmesh.errors import InvalidCheckpoint, InvalidMeshMessage, InvalidReceipt
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.log.receipt import open_receipt
from trustmesh.reading import parse_reading

log = logging.getLogger("trustmesh.device")

CBOR_SEQ = "application/cbor-seq"
BATCH = 100
MQTT_TIMEOUT = 10.0


@dataclass(frozen=True)
class MqttRoute:
    broker: str  # mqtt://host:port
    node: str  # the node's HTTP URL: its log key

    def __str__(self) -> str:
        return f"{self.broker} (for {self.node})"


class _MqttLink:
    """One connection to a broker, subscribed to this device's receipts."""

    def __init__(self, route: MqttRoute, did: str, timeout: float) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        host, _, port = route.broker.removeprefix("mqtt://").partition(":")
        self.did, self.timeout = did, timeout
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        subscribed: queue.Queue[bool] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self._take(m.payload)
        self.client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(True)
        self.client.connect(host, int(port or 1883))
        self.client.loop_start()
        try:
            self.client.subscribe(f"trustmesh/v1/receipts/{did}", qos=1)
            subscribed.get(timeout=timeout)
        except BaseException:
            self.close()
            raise

    def _take(self, payload: bytes | bytearray) -> None:
        """An answer: one object, or an array of them (the answers to a batch)."""
        try:
            document = json.loads(payload)
        except ValueError:
            return  # not an answer of a node: nothing to take from it
        for item in document if isinstance(document, list) else [document]:
            self.answers.put(item)

    def exchange(self, entries: list[bytes]) -> dict[str, dict[str, Any]]:
        """Publish ``entries`` as one batch; their answers by leaf hash (hex), as they come."""
        self.client.publish(f"trustmesh/v1/readings/{self.did}", b"".join(entries), qos=1)
        wanted = {merkle.leaf_hash(e).hex() for e in entries}

        def leaf(item: dict[str, Any]) -> str | None:
            return str(item.get("leaf_hash")) if isinstance(item, dict) else None

        return gather(self.answers, wanted, self.timeout, leaf)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# Problem types that say a reading's bytes can never be logged by that node.
# Others (unknown device, clock, over capacity, store or chain unavailable) may
# pass later, so the reading stays queued.
FINAL_REFUSALS = frozenset(
    {
        "wrong-structure",
        "unknown-alg",
        "kid-not-did",
        "missing-field",
        "bad-field",
        "oversized",
        "signature",
        "replay",
        "equivocation",
        "revoked-device",
    }
)


class Uplink:
    def __init__(
        self,
        device: Device,
        outbox: Outbox,
        nodes: Sequence[str | MqttRoute | MeshRoute],
        *,
        watchers: Sequence[str] = (),
        http: httpx.Client | None = None,
        max_wait: float = 10.0,
    ) -> None:
        if not nodes:
            raise ValueError("an uplink needs at least one node")
        self.device = device
        self.outbox = outbox
        self.nodes = [n.rstrip("/") if isinstance(n, str) else n for n in nodes]
        self.watchers = [w.rstrip("/") for w in watchers]
        self.http = http or httpx.Client(timeout=10)
        self._verifiers: dict[str, NoteVerifier] = {}
        self._links: dict[MqttRoute, _MqttLink] = {}
        self._mesh_links: dict[int, MeshLink] = {}  # by route id: a peer takes one handler
        self._wait = wait_exponential(multiplier=0.1, max=max_wait)
        self._failed_rounds = 0
        self.sent_to: dict[str, int] = {}  # node → readings it receipted
        self.refused = 0  # readings refused for good (kept in the outbox's refused table)

    @property
    def sent_over_mesh(self) -> int:
        """Readings receipted through mesh routes (their share of :attr:`sent_to`)."""
        return sum(n for route, n in list(self.sent_to.items()) if route.startswith(MESH))

    def record(
        self,
        sensor: str,
        value: Any,
        unit: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Sign a reading and queue it durably (before any send); its seq."""
        return self.queue(self.device.sign(sensor, value, unit=unit, extra=extra))

    def queue(self, entry: bytes) -> int:
        """Queue a reading this device signed (with :meth:`Device.sign`) durably; its seq."""
        seq = parse_reading(entry).seq
        self.outbox.put(seq, entry)
        return seq

    def flush(self) -> int:
        """One round: send what is queued to the first node that takes it; how many
        readings were receipted."""
        pending = self.outbox.pending(BATCH)
        if not pending:
            return 0
        for node in self.nodes:
            refused = self.refused
            try:
                if isinstance(node, MqttRoute):
                    done = self._send_mqtt(node, pending)
                elif isinstance(node, MeshRoute):
                    done = self._send_mesh(node, pending)
                else:
                    done = self._send(node, pending)
            except (
                httpx.HTTPError,
                ValueError,
                OSError,
                queue.Empty,
                InvalidReceipt,
                InvalidCheckpoint,
                InvalidMeshMessage,
            ) as exc:
                log.warning("node %s failed (%s): trying the next", node, exc)
                continue
            if done or self.refused > refused:  # the queue moved
                self._failed_rounds = 0
                return done
        self._failed_rounds += 1
        return 0

    def backoff(self) -> float:
        """Seconds to wait before the next round after a round no node took."""
        if not self._failed_rounds:
            return 0.0
        state = _Attempt(self._failed_rounds)
        return float(self._wait(state))  # type: ignore[arg-type]

    def drain(self, stop: threading.Event | None = None) -> None:
        """Flush until the outbox is empty (or ``stop`` is set), backing off between
        rounds that no node took."""
        stop = stop or threading.Event()
        while len(self.outbox) and not stop.is_set():
            if not self.flush():
                stop.wait(self.backoff())  # the backoff policy's pause, not a guess

    def _verifier(self, node: str) -> NoteVerifier:
        verifier = self._verifiers.get(node)
        if verifier is None:
            answer = self.http.get(f"{node}/v1/log")
            answer.raise_for_status()
            verifier = self._verifiers[node] = NoteVerifier.from_vkey(answer.json()["verifier_key"])
        return verifier

    def _send(self, node: str, pending: list[tuple[int, bytes]]) -> int:
        verifier = self._verifier(node)
        answer = self.http.post(
            f"{node}/v1/readings",
            content=b"".join(entry for _, entry in pending),
            headers={"content-type": CBOR_SEQ},
        )
        if answer.status_code in (429, 503) or answer.status_code >= 500:
            raise httpx.HTTPStatusError("busy or down", request=answer.request, response=answer)
        answer.raise_for_status()
        items = answer.json()
        if not isinstance(items, list) or len(items) != len(pending):
            raise ValueError("the node answered another number of items")
        return self._accept(node, verifier, pending, items)

    def _accept(
        self,
        node: str,
        verifier: NoteVerifier,
        pending: list[tuple[int, bytes]],
        items: list[dict[str, Any]],
    ) -> int:
        """Verify each answer's receipt and acknowledge its reading; how many."""
        done, receipts = 0, []
        opened: dict[str, Checkpoint] = {}  # the checkpoints of this answer, each checked once
        for (seq, entry), item in zip(pending, items, strict=True):
            if not isinstance(item, dict) or not isinstance(item.get("proof"), str):
                detail = item.get("detail") if isinstance(item, dict) else item
                kind = (
                    str(item.get("type", "")).rsplit("/", 1)[-1] if isinstance(item, dict) else ""
                )
                if kind in FINAL_REFUSALS:  # never to be logged there: out of the queue
                    log.warning("seq %d refused for good by %s (%s): %s", seq, node, kind, detail)
                    self.outbox.refuse(seq, node, kind, str(detail))
                    self.refused += 1
                    continue
                # Refused for now: it stays in the outbox, for another node or a later round.
                log.warning("seq %d refused by %s: %s", seq, node, detail)
                continue
            leaf = merkle.leaf_hash(entry)
            try:
                receipt = open_receipt(item["proof"], leaf, verifier, verifier.name, opened=opened)
            except InvalidReceipt as exc:
                log.warning("seq %d: a bad receipt from %s: %s", seq, node, exc)
                continue  # stays in the outbox
            if receipt.index != item.get("index"):
                log.warning("seq %d: the receipt from %s names another index", seq, node)
                continue
            self.outbox.acknowledge(seq, verifier.name, item["proof"])
            receipts.append({"leaf_hash": leaf.hex(), "proof": item["proof"]})
            done += 1
        self.sent_to[node] = self.sent_to.get(node, 0) + done
        self._forward(receipts)
        return done

    def _send_mqtt(self, route: MqttRoute, pending: list[tuple[int, bytes]]) -> int:
        verifier = self._verifier(route.node)
        link = self._links.get(route)
        if link is None:
            link = self._links[route] = _MqttLink(route, self.device.did, MQTT_TIMEOUT)
        answers = link.exchange([entry for _, entry in pending])
        items = [answers.get(merkle.leaf_hash(entry).hex(), {}) for _, entry in pending]
        refused = self.refused
        done = self._accept(str(route), verifier, pending, items)
        if not done and self.refused == refused:
            link.close()  # nothing came back: reconnect next time
            del self._links[route]
            raise ValueError(f"no receipt through {route} within {MQTT_TIMEOUT} s")
        return done

    def _send_mesh(self, route: MeshRoute, pending: list[tuple[int, bytes]]) -> int:
        link = self._mesh_links.get(id(route))
        if link is None:
            link = self._mesh_links[id(route)] = MeshLink(route)
        answers = link.exchange([entry for _, entry in pending])
        items = [answers.get(merkle.leaf_hash(entry).hex(), {}) for _, entry in pending]
        done = self._accept(str(route), route.node, pending, items)
        if not done:
            raise ValueError(f"no receipt through {route} within {link.timeout:g} s")
        return done

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()

    def _forward(self, receipts: list[dict[str, str]]) -> None:
        for watcher in self.watchers:
            if not receipts:
                return
            try:
                self.http.post(f"{watcher}/v1/receipts", json={"receipts": receipts})
            except httpx.HTTPError as exc:
                log.warning("watcher %s unreachable: %s", watcher, exc)


class _Attempt:
    """The part of tenacity's RetryCallState its wait policies read."""

    def __init__(self, number: int) -> None:
        self.attempt_number = number
