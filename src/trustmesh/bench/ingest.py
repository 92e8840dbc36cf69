"""End-to-end ingest: a node on loopback, driven from another process.

The node (``trustmesh node run``: embedded chain, SQLite, one verifier process
per core) runs in a subprocess; this process is the load generator. It
registers simulated devices, signs all the readings of the HTTP run before it
(on every core), then sends them as CBOR-sequence batches over HTTP with several
requests in flight and no pause from the first to the last (with ``duration``, a
first run of ``readings`` measures the rate that sizes a run of that many
seconds), and
(when ``mosquitto`` is installed) publishes them over MQTT through a broker it
starts, each device's readings in batches of ``MQTT_BATCH`` per message (a
CBOR sequence, answered by one array of receipts), with as many readings in
flight as over HTTP. A reading counts when its
receipt is back. In the same run, just before and just after the HTTP run, it
measures the raw ES256 verification rate of this machine on all its cores, the
physical limit of this work, and reports the ratio to their mean; and the
crypto ceiling of the receipt scheme (one verification per reading, two
signatures per batch's checkpoint, at the batch size the node ran at). The
node's RSS is sampled throughout, so a leak shows as growth.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httptools
import httpx
import orjson
import uvloop

from trustmesh.device import wall_clock_ms
from trustmesh.errors import Error
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.reading import sign_reading
from trustmesh.up.network import spawn_node, stop_node

BATCH = 200
IN_FLIGHT = 8
DEVICES = 100
RAW_SECONDS = 2.0  # each of the two baseline measurements around the HTTP run
MQTT_BATCH = 100  # readings per MQTT message: a device's batch, as the SDK sends
# Readings in the HTTP run by default: its first receipts come back one batch's
# latency (~0.15 s) after its start, and a run of 20,000 (~1.7 s) spent ~8% of its
# time filling that pipeline (its first fifth ran at ~60% of the rest).
READINGS = 60_000
MQTT_READINGS = 20_000  # at most, in the MQTT run
GOALS = {
    "ratio_min": 0.6,
    "mqtt_ratio_min": 0.4,
    "p99_ms_max": 250,
    "http_readings_per_s_min": 10_000,
}


def raw_rate(work: Callable[[float], int], seconds: float = 3.0) -> float:
    """Times per second that ``work`` runs, on every core at once."""
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        counts = list(pool.map(work, [seconds] * workers))
    return sum(counts) / seconds


def _verify_for(seconds: float) -> int:
    """ES256 verifications with ``cryptography`` for ``seconds``: the issue's baseline."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(180)
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public, algorithm = key.public_key(), ec.ECDSA(hashes.SHA256())
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            public.verify(signature, message, algorithm)
        count += 100
    return count


def _checkpoint_signatures_for(seconds: float) -> int:
    """A checkpoint's two signatures (P-256 with ``cryptography``, Ed25519 with
    libsodium, as a node signs them) for ``seconds``: what a node pays per batch."""
    import nacl.signing
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    log_key, log_ed25519 = (
        ec.generate_private_key(ec.SECP256R1()),
        nacl.signing.SigningKey(os.urandom(32)),
    )
    algorithm, note = ec.ECDSA(hashes.SHA256()), os.urandom(120)
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            log_key.sign(note, algorithm)
            log_ed25519.sign(note)
        count += 100
    return count


def run(
    readings: int = READINGS,
    duration: float | None = None,
    mqtt: bool = True,
    devices: int = DEVICES,
) -> dict[str, Any]:
    """Measure; returns the JSON object that ``trustmesh bench ingest --json`` prints."""
    signing = raw_rate(_checkpoint_signatures_for)
    with tempfile.TemporaryDirectory() as tmp, _broker(Path(tmp)) as broker_url:
        node, info = start_node(Path(tmp), broker_url if mqtt else None)
        try:
            fleet = register_devices(info["url"], devices)
            first_contact(info["url"], fleet)
            count = readings
            if duration is not None:  # a first run of ``readings`` sizes one of ``duration``
                calibration = uvloop.run(steady_load(info["url"], sign_ahead(fleet, readings)))
                count = max(readings, round(duration * calibration["http_readings_per_s"]))
            shares = sign_ahead(fleet, count)  # before the run: it sends without a pause
            # The baseline brackets the HTTP run (this machine's speed drifts with its
            # neighbours' load: a baseline taken long before the run skews the ratio).
            raw_before = raw_rate(_verify_for, RAW_SECONDS)
            sampler = RssSampler(node.pid)
            sampler.start()
            signed_before = _checkpoints_signed(info["url"])
            (main_before, workers_before), own_cpu = _tree_cpu_seconds(node.pid), _own_cpu_seconds()
            loop_before = _thread_cpu_seconds(node.pid, node.pid)
            http = uvloop.run(steady_load(info["url"], shares))
            main_after, workers_after = _tree_cpu_seconds(node.pid)
            loop_cpu = _thread_cpu_seconds(node.pid, node.pid) - loop_before
            checkpoints = _checkpoints_signed(info["url"]) - signed_before
            node_cpu = (main_after - main_before, workers_after - workers_before)
            own_cpu = _own_cpu_seconds() - own_cpu
            sampler.stop()  # the HTTP run: its memory is what must stay flat
            raw_after = raw_rate(_verify_for, RAW_SECONDS)
            raw = (raw_before + raw_after) / 2
            burst = RssSampler(node.pid)  # the MQTT run: its memory apart
            burst.start()
            mqtt_before = _tree_cpu_seconds(node.pid)
            mqtt_result: dict[str, Any] = (
                _mqtt_load(broker_url, fleet, min(readings, MQTT_READINGS))
                if mqtt and broker_url
                else {"mqtt_readings_per_s": None, "mqtt_refused": None, "mqtt_p99_ms": None}
            )
            mqtt_after = _tree_cpu_seconds(node.pid)
            burst.stop()
            if mqtt_result.get("mqtt_readings"):
                mqtt_result["mqtt_cpu_us_per_reading"] = {
                    "node": round(
                        (mqtt_after[0] - mqtt_before[0]) / mqtt_result["mqtt_readings"] * 1e6, 1
                    ),
                    "node_workers": round(
                        (mqtt_after[1] - mqtt_before[1]) / mqtt_result["mqtt_readings"] * 1e6, 1
                    ),
                }
        finally:
            stop_node(node)
    # The receipt scheme's crypto on all cores: a verification per reading, and a
    # checkpoint's two signatures per batch (at the batch size the node ran at).
    per_checkpoint = http["http_readings"] / max(1, checkpoints)
    ceiling = 1 / (1 / raw + 1 / (signing * per_checkpoint))
    return {
        "benchmark": "ingest",
        "cores": os.cpu_count(),
        "devices": devices,
        "batch": BATCH,
        "in_flight": IN_FLIGHT,
        "mqtt_batch": MQTT_BATCH,
        **http,
        **mqtt_result,
        "raw_verify_per_s": round(raw),
        "raw_verify_per_s_before_after": [round(raw_before), round(raw_after)],
        "ratio": round(http["http_readings_per_s"] / raw, 3),
        "mqtt_ratio": (
            round(mqtt_result["mqtt_readings_per_s"] / raw, 3)
            if mqtt_result["mqtt_readings_per_s"]
            else None
        ),
        "checkpoints_signed_per_s": round(checkpoints / http["http_seconds"], 1),
        "readings_per_checkpoint": round(per_checkpoint, 1),
        "raw_checkpoint_signatures_per_s": round(signing),
        "raw_verify_and_receipt_per_s": round(ceiling),
        "ratio_vs_verify_and_receipt": round(http["http_readings_per_s"] / ceiling, 3),
        # CPU spent per reading over HTTP: the node with its workers, and this
        # load generator (its signing, done before the run, left out), against one verification.
        "cpu_us_per_reading": {
            "node": round(node_cpu[0] / http["http_readings"] * 1e6, 1),
            # of which its event loop's thread (HTTP, parsing, receipts); the rest is
            # the sequencer's thread (the SQLite append) and the node's other threads
            "node_event_loop": round(loop_cpu / http["http_readings"] * 1e6, 1),
            "node_workers": round(node_cpu[1] / http["http_readings"] * 1e6, 1),
            "generator": round(own_cpu / http["http_readings"] * 1e6, 1),
            "one_verify": round((os.cpu_count() or 1) / raw * 1e6, 1),
        },
        "rss_mb": round(max(sampler.peak_mb, burst.peak_mb), 1),
        # over the HTTP run: growth from a quarter in to the end, and each fifth's end
        "rss_growth_mb": round(sampler.growth_mb, 1),
        "rss_mb_by_fifth": sampler.by_fifth(),
        "mqtt_rss_mb": round(burst.peak_mb, 1),
        "goals": GOALS,
    }


def _checkpoints_signed(url: str) -> int:
    """The node's count of checkpoints signed (one per committed batch), from /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("trustmesh_checkpoints_signed_total "):
            return int(float(line.split()[1]))
    raise RuntimeError("the node exports no trustmesh_checkpoints_signed_total")


def start_node(tmp: Path, mqtt: str | None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A node on a free loopback port; stop it with :func:`stop_node`."""
    args = ["--data-dir", str(tmp / "node"), "--port", "0", "--epoch", "5"]
    if mqtt:
        args += ["--mqtt", mqtt]
    env = {**os.environ, "TRUSTMESH_PASSWORD": "bench"}
    try:
        return spawn_node(args, env, tmp / "node.log")
    except Error:
        raise RuntimeError(f"the node did not start: {(tmp / 'node.log').read_text()}") from None


class Device:
    """A simulated sensor: its key and its seq, in memory (a real device keeps
    its seq on disk; the load generator need not pay for that)."""

    def __init__(self) -> None:
        self.signer = SoftwareSigner.generate()
        self.did = did_from_key(self.signer.public_key)
        self.seq = 0

    def sign(self, value: float) -> bytes:
        self.seq += 1
        return sign_reading(
            self.signer, seq=self.seq, ts=wall_clock_ms(), sensor="temperature", value=value,
            unit="C",
        )  # fmt: skip


def register_devices(url: str, count: int) -> list[Device]:
    devices = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            device = Device()
            client.post(f"{url}/v1/devices", json={"did": device.did}).raise_for_status()
            devices.append(device)
    return devices


def first_contact(url: str, devices: list[Device]) -> None:
    """One reading per device, untimed: the node looks each new device up on
    the chain once (a one-time cost per device, not the rate being measured)."""
    body = b"".join(device.sign(20.0) for device in devices)
    with httpx.Client(timeout=120) as client:
        answer = client.post(
            f"{url}/v1/readings", content=body, headers={"content-type": "application/cbor-seq"}
        )
    answer.raise_for_status()
    refused = [item for item in answer.json() if "index" not in item]
    if refused:
        raise RuntimeError(f"the node refused first readings: {refused[:3]}")


def _sign_all(devices: list[Device], count: int) -> list[bytes]:
    return [devices[i % len(devices)].sign(_value(i)) for i in range(count)]


def _value(i: int) -> float:
    return 20.0 + i % 50 / 10


def sign_ahead(devices: list[Device], count: int) -> list[list[bytes]]:
    """``count`` readings signed before a run, on every core: the IN_FLIGHT senders'
    shares, each its devices' readings in turn and each device's in seq order (as
    :func:`_sign_all` signs one sender's), so that the run sends without a pause."""
    groups = [devices[i::IN_FLIGHT] for i in range(IN_FLIGHT)]
    per_group = count // IN_FLIGHT
    # Device j of a group of n signs the share's readings j, j + n, j + 2n, …
    tasks = [
        (device, range(j, per_group, len(group)))
        for group in groups
        for j, device in enumerate(group)
    ]
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=get_context("spawn")) as pool:
        signed = iter(
            pool.map(
                _sign_device,
                [
                    (device.signer.alg.value, device.signer.private_bytes(), device.seq, positions)
                    for device, positions in tasks
                ],
            )
        )
        shares = []
        for group in groups:
            own = [next(signed) for _ in group]
            shares.append([own[i % len(group)][i // len(group)] for i in range(per_group)])
    for device, positions in tasks:
        device.seq += len(positions)
    return shares


def _sign_device(task: tuple[int, bytes, int, range]) -> list[bytes]:
    """One device's readings at ``positions`` of its sender's share, from seq ``last + 1``."""
    alg, secret, last, positions = task
    signer = SoftwareSigner.from_private_bytes(Alg(alg), secret)
    return [
        sign_reading(signer, seq=last + 1 + n, ts=wall_clock_ms(), sensor="temperature",
                     value=_value(i), unit="C")
        for n, i in enumerate(positions)
    ]  # fmt: skip


class _Tally:
    """What the senders got back: receipts, their bytes, and when each batch's came."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.answered: list[tuple[float, int]] = []  # (when, readings receipted)
        self.accepted = self.proof_bytes = self.answer_bytes = 0

    def take(self, status: int, content: bytes, elapsed: float) -> None:
        items = orjson.loads(content) if status == 200 else []
        ok = sum(1 for item in items if "index" in item)
        self.accepted += ok
        self.proof_bytes += sum(len(item.get("proof", "")) for item in items)
        self.answer_bytes += len(content)
        self.latencies.extend([elapsed] * ok)
        self.answered.append((time.perf_counter(), ok))

    def summary(self, seconds: float) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        return {
            "http_readings": self.accepted,
            "http_readings_per_s": round(self.accepted / seconds),
            "p50_ms": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 1) if latencies else None,
            "http_seconds": round(seconds, 2),
            # what a receipt weighs: its tlog-proof, and its share of the JSON answer
            "receipt_bytes_per_reading": round(self.proof_bytes / max(1, self.accepted)),
            "answer_bytes_per_reading": round(self.answer_bytes / max(1, self.accepted)),
        }

    def by_fifth(self, started: float, seconds: float) -> list[int]:
        """Readings/s receipted in each fifth of a run that began at ``started``."""
        fifth = seconds / 5
        counts = [0] * 5
        for at, ok in self.answered:
            counts[min(4, int((at - started) / fifth))] += ok
        return [round(n / fifth) for n in counts]


async def _send(connection: Connection, entries: list[bytes], tally: _Tally) -> None:
    """One sender's readings in batches, one request in flight (a device's readings
    arrive in seq order, as a real device sends them)."""
    for i in range(0, len(entries), BATCH):
        start = time.perf_counter()
        status, content = await connection.post(
            "/v1/readings", b"".join(entries[i : i + BATCH]), "application/cbor-seq"
        )
        tally.take(status, content, time.perf_counter() - start)


async def steady_load(url: str, shares: list[list[bytes]]) -> dict[str, Any]:
    """Send readings signed ahead (:func:`sign_ahead`), each share down its own
    connection, all at once and without a pause: the load is steady from the first
    request to the last (readings/s in each fifth of the run show it)."""
    tally = _Tally()
    connections = [await Connection.open(url) for _ in shares]
    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(_send(c, e, tally) for c, e in zip(connections, shares, strict=True))
        )
        seconds = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return {
        **tally.summary(seconds),
        "http_readings_per_s_by_fifth": tally.by_fifth(started, seconds),
    }


async def http_load(
    url: str, devices: list[Device], count: int, duration: float | None
) -> dict[str, Any]:
    """IN_FLIGHT senders, each with its own devices, in rounds of ``count`` readings
    signed between rounds (untimed: the load pauses meanwhile), until ``duration``."""
    tally = _Tally()
    groups = [devices[i::IN_FLIGHT] for i in range(IN_FLIGHT)]
    per_group = count // IN_FLIGHT
    connections = [await Connection.open(url) for _ in range(IN_FLIGHT)]
    try:
        started, seconds, untimed = time.perf_counter(), 0.0, 0.0
        while True:
            before = _own_cpu_seconds()
            signed = [_sign_all(group, per_group) for group in groups]  # signing is not timed
            untimed += _own_cpu_seconds() - before
            round_start = time.perf_counter()
            await asyncio.gather(
                *(_send(c, e, tally) for c, e in zip(connections, signed, strict=True))
            )
            seconds += time.perf_counter() - round_start
            if duration is None or time.perf_counter() - started >= duration:
                break
    finally:
        for connection in connections:
            connection.close()
    return {**tally.summary(seconds), "untimed_cpu_s": untimed}


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator: requests written as
    bytes, answers read with httptools' parser, so that the generator, which shares
    the machine with the node, costs it little (httpx cost it four times as much)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host
        self._body: list[bytes] = []
        self._complete = False

    @classmethod
    async def open(cls, url: str) -> Connection:
        parsed = urlparse(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes, media: str) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {media}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.writelines([head.encode(), body])
        self._body, self._complete = [], False
        parser = httptools.HttpResponseParser(self)
        while not self._complete:
            data = await self.reader.read(1 << 18)
            if not data:
                raise ConnectionError("the node closed the connection")
            parser.feed_data(data)
        return parser.get_status_code(), b"".join(self._body)

    def on_body(self, body: bytes) -> None:  # httptools' callbacks
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    def close(self) -> None:
        self.writer.close()


def _mqtt_load(broker: str, devices: list[Device], count: int) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = broker.removeprefix("mqtt://").split(":")
    entries = _sign_all(devices, count)
    sent: dict[str, float] = {}
    done: queue.Queue[float] = queue.Queue()
    latencies: list[float] = []
    refused: Counter[str] = Counter()
    ready = threading.Event()
    # Messages published and not yet answered: as many readings in flight as over HTTP.
    window = threading.Semaphore(IN_FLIGHT * BATCH // MQTT_BATCH)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")

    def on_message(c: Any, u: Any, message: Any) -> None:
        window.release()  # one answer per message: the next batch may go
        document = orjson.loads(message.payload)  # a batch's answer: an array
        for item in document if isinstance(document, list) else [document]:
            # QoS 1 may deliver a receipt twice: each reading counts once.
            started = sent.pop(item.get("leaf_hash", ""), None)
            if started is not None and "index" in item:
                latencies.append(time.perf_counter() - started)
            if "index" not in item:
                refused[item.get("type", "?").rsplit("/", 1)[-1]] += 1
            if started is not None or "index" not in item:
                done.put(time.perf_counter())

    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect(host, int(port))
    client.loop_start()
    try:
        client.subscribe("trustmesh/v1/receipts/#", qos=1)
        ready.wait(10)
        from trustmesh.log.merkle import leaf_hash

        # Each device's readings in order, MQTT_BATCH to a message (a CBOR sequence).
        batches = [
            (device.did, entries[d :: len(devices)][i : i + MQTT_BATCH])
            for i in range(0, -(-count // len(devices)), MQTT_BATCH)
            for d, device in enumerate(devices)
        ]
        leaves = {entry: leaf_hash(entry).hex() for entry in entries}  # hashed untimed
        start = time.perf_counter()
        for did, batch in batches:
            if batch:
                window.acquire()  # paced as HTTP is, not one burst
                now = time.perf_counter()
                sent.update((leaves[entry], now) for entry in batch)
                client.publish(f"trustmesh/v1/readings/{did}", b"".join(batch), qos=1)
        last = start
        for _ in range(count):
            last = done.get(timeout=120)
        seconds = last - start
    finally:
        client.loop_stop()
        client.disconnect()
    latencies.sort()
    return {
        "mqtt_readings": len(latencies),
        "mqtt_readings_per_s": round(len(latencies) / seconds),
        "mqtt_refused": dict(refused),
        "mqtt_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 1) if latencies else None,
    }


def _own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def _cpu_seconds(stat: Path) -> float:
    """utime + stime of a /proc ``stat`` file (a process's, or one thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_seconds(pid: int, tid: int) -> float:
    """CPU time of one thread of a process (its main thread: ``tid`` = ``pid``)."""
    return _cpu_seconds(Path(f"/proc/{pid}/task/{tid}/stat"))


def _tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process, and of all its live descendants, from /proc."""
    own, descendants, pending = 0.0, 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            seconds = _cpu_seconds(Path(f"/proc/{current}/stat"))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        if current == pid:
            own += seconds
        else:
            descendants += seconds
        pending.extend(int(child) for child in children)
    return own, descendants


class RssSampler(threading.Thread):
    """Samples a process's resident memory at the start, every 0.5 s, and at the end."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        self._sample()
        while not self._halt.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                self.samples.append(int(line.split()[1]) / 1024)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return max(self.samples, default=0.0)

    def by_fifth(self) -> list[float]:
        """RSS at the end of each fifth of the run: flat memory shows as a plateau."""
        n = len(self.samples)
        return [round(self.samples[max(0, n * k // 5 - 1)], 1) for k in range(1, 6)] if n else []

    @property
    def growth_mb(self) -> float:
        """RSS at the end minus RSS a quarter of the way in (after warm-up)."""
        if len(self.samples) < 4:
            return 0.0
        return self.samples[-1] - self.samples[len(self.samples) // 4]


class _broker:
    """A mosquitto broker on a free loopback port, if mosquitto is installed."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str | None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            return None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        conf = self.tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nmax_queued_messages 100000\n"
        )
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"mqtt://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        return None

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
