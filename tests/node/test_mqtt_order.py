"""The MQTT bridge acknowledges messages in the order they came, even when a
later batch is answered first (MQTT-4.6.0-2): a broker that sees acks out of
order may redeliver its queue out of order, and a device's readings would then
reach the log out of seq order and be refused as replays."""

from __future__ import annotations

import asyncio
from typing import Any

import cbor2

from trustmesh._problems import Problem
from trustmesh.node._ingest import Accepted
from trustmesh.node._mqtt import MqttBridge


class _HeldIngestor:
    """Answers each submitted batch only when the test says so."""

    origin = "example.com/log"

    def __init__(self) -> None:
        self.calls: list[tuple[list[bytes], asyncio.Future[list[Accepted | Problem]]]] = []
        self.called = asyncio.Event()

    async def submit_many(
        self, items: list[bytes], decoded: list[Any] | None = None
    ) -> list[Accepted | Problem]:
        future: asyncio.Future[list[Accepted | Problem]] = (
            asyncio.get_running_loop().create_future()
        )
        self.calls.append((items, future))
        self.called.set()
        return await future


class _Recorder:
    """Stands in for the broker connection: records publishes and acks."""

    def __init__(self) -> None:
        self.acks: list[int] = []
        self.published: list[str] = []

    def publish(self, topic: str, payload: str, qos: int) -> None:
        self.published.append(topic)

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append(mid)


def _accepted(n: int) -> Accepted:
    return Accepted(f"did:key:z{n}", n, n, bytes(32), False, n + 1, "tlog-proof")


async def _batch(
    bridge: MqttBridge, ingestor: _HeldIngestor, mids: list[int]
) -> asyncio.Task[None]:
    """Hand the bridge messages ``mids`` and start its flush; return once submitted."""
    reading = cbor2.dumps(["a", "reading"])  # one CBOR item: the bridge hands it on
    bridge._pending.extend((reading, mid, 1, f"did:key:z{mid}") for mid in mids)
    ingestor.called.clear()
    task = asyncio.create_task(bridge._flush_soon())
    await ingestor.called.wait()
    return task


def test_acks_keep_arrival_order_when_a_later_batch_is_answered_first() -> None:
    async def scenario() -> list[list[int]]:
        ingestor = _HeldIngestor()
        loop = asyncio.get_running_loop()
        bridge = MqttBridge("mqtt://127.0.0.1:1", ingestor, loop)  # type: ignore[arg-type]
        recorder = _Recorder()
        bridge.client = recorder  # type: ignore[assignment]
        first = await _batch(bridge, ingestor, [1, 2])
        second = await _batch(bridge, ingestor, [3])
        seen: list[list[int]] = []
        (_, later) = ingestor.calls[1]
        later.set_result([_accepted(3)])
        await second
        seen.append(list(recorder.acks))  # answered, but 1 and 2 are not yet
        (_, earlier) = ingestor.calls[0]
        earlier.set_result([_accepted(1), Problem("replay", "seq 2 is not above 2")])
        await first
        seen.append(list(recorder.acks))
        return seen

    before_first, after_first = asyncio.run(scenario())
    assert before_first == []
    assert after_first == [1, 2, 3]
