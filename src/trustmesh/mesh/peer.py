"""One mesh peer (libp2p, gossipsub) for nodes, watchers and devices.

py-libp2p runs on trio; a peer runs its own trio loop in a thread of its own, so
that asyncio servers and plain threads alike use it through this blocking API:
``start``, ``connect``, ``subscribe``, ``publish``, ``close``. Its identity is an
Ed25519 key (a device's is bound to its did:key by :mod:`trustmesh.mesh.binding`).

Every message is checked by its topic's validator (:mod:`trustmesh.mesh.validate`)
before this peer forwards it or hands it on; a refused one is dropped here and
counted by reason (``rejected``). Message ids are the hash of the message (the
same batch relayed by many peers is seen once). Handlers run one message at a
time per topic, in a worker thread, and each subscription is drained at once
(gossipsub's 32-slot subscription buffer drops silently what waits): a slow
handler holds its topic's messages in this peer's own queue, not in libp2p's.
Gossip is best effort: what must arrive is acknowledged by its receiver (a
receipt for readings) and sent again until it is.

Beside gossip, a peer may ``serve`` the relay protocol (one request at a time on
a stream kept open, answered in a worker thread; requests draw on the same
allowance and strikes as messages) and ``ask`` its peers on it: a device's batch
and its receipts (:mod:`trustmesh.mesh.relay`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import multiaddr
import trio
from google.protobuf.message import DecodeError
from libp2p import new_host
from libp2p.crypto.ed25519 import Ed25519PublicKey, create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.exceptions import MessageTooLarge
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.varint import (
    decode_uvarint_from_stream,
    encode_uvarint,
    encode_varint_prefixed,
    read_varint_prefixed_bytes_limited,
)

from trustmesh.batch_verify import Item, verify_in_pool
from trustmesh.errors import InvalidMeshMessage
from trustmesh.mesh._records import install, memoize_addrs
from trustmesh.mesh.topics import MAX_MESSAGE, RELAY, TOPICS, message_id
from trustmesh.mesh.validate import Keys, Verdict, envelope, validate

__all__ = ["MeshPeer", "peer_id_of"]

log = logging.getLogger("trustmesh.mesh")

GOSSIPSUB = TProtocol("/meshsub/1.1.0")
START_SECONDS = 30.0
QUEUE = 10_000  # messages a topic's handler may fall behind before new ones wait
RATE, BURST = 500.0, 2_000.0  # messages a second a peer may send us, and at once
STRIKES = 20  # refused messages before a peer is disconnected and banned
VALIDATION_SECONDS = 30.0  # a message not validated by then is dropped (not a strike)
MAX_ANSWERS = 64  # messages in an answer on the relay protocol
UNSERVED_SECONDS, UNSERVED_KEPT = 60.0, 10_000  # peers not asked again for a while

Handler = Callable[[bytes], None]
Judge = Callable[[bytes], Verdict]
# A request on the relay protocol, from the peer id asking: the verdict on it (a
# refusal is counted as a validator's is), and the answer's messages.
Serve = Callable[[str, bytes], tuple[Verdict, list[bytes]]]


def peer_id_of(peer_key: bytes) -> str:
    """The libp2p peer id of an Ed25519 public key (a binding's, say)."""
    try:
        return str(ID.from_pubkey(Ed25519PublicKey.from_bytes(peer_key)))
    except ValueError as exc:
        raise InvalidMeshMessage(f"not an Ed25519 peer key: {exc}") from None


class _Pubsub(Pubsub):
    """py-libp2p's Pubsub, with two repairs.

    - One RPC is written to a stream at a time. py-libp2p writes from the per-peer
      send loop and, on a new peer or a graft, from gossipsub directly, and yamux
      locks each frame, not each message: RPCs over one frame (~64 KiB; a batch of
      200 readings' receipts) interleaved, and the receiver could not read them
      (measured here: through two relays, such a batch never arrived).
    - A peer's unreadable RPC resets that stream instead of ending this peer's
      whole trio run; gossip is best effort and what matters is sent again until
      acknowledged."""

    async def write_msg(self, stream: Any, rpc_msg: Any) -> bool:
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            return bool(await super().write_msg(stream, rpc_msg))

    @functools.cached_property
    def _write_locks(self) -> weakref.WeakKeyDictionary[Any, trio.Lock]:
        return weakref.WeakKeyDictionary()

    async def continuously_read_stream(self, stream: Any) -> None:
        try:
            await super().continuously_read_stream(stream)
        except DecodeError as exc:
            log.warning("mesh: an unreadable RPC from %s (%s): stream reset",
                        stream.muxed_conn.peer_id, exc)  # fmt: skip
            with contextlib.suppress(Exception):
                await stream.reset()


class MeshPeer:
    def __init__(
        self,
        keys: Keys,
        *,
        seed: bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_drop: Callable[[str, str], None] | None = None,
        rate: float = RATE,
        burst: float = BURST,
        strikes: int = STRIKES,
        verifier: Executor | None = None,
    ) -> None:
        """``on_drop(topic, kind)`` is told of each message dropped here (a metric).
        A peer may send ``rate`` messages a second (``burst`` at once); one that
        sends more, or has ``strikes`` messages refused, is disconnected and banned.
        ``verifier``: where readings' signatures are checked (the caller's, a process
        pool say, for a peer that relays much); by default a thread per core."""
        install()  # (each peer's signed peer record checked once, not with every RPC)
        self.keys = keys
        self.rate, self.burst, self.strikes = rate, burst, strikes
        self.banned: set[str] = set()  # peer ids this peer disconnected for misbehaving
        self._buckets: dict[Any, tuple[float, float]] = {}  # peer → (tokens, at)
        self._strikes: Counter[Any] = Counter()
        self.on_drop = on_drop or (lambda topic, kind: None)
        self.rejected: Counter[str] = Counter()  # kind of refusal → messages dropped here
        self.delivered: Counter[str] = Counter()  # topic → valid messages taken (and handled)
        self.taken: Counter[str] = Counter()  # topic → items (readings, …) others' messages held
        self._key_pair = create_new_key_pair(seed)
        self._listen = multiaddr.Multiaddr(f"/ip4/{host}/tcp/{port}")
        self._handlers: dict[str, Handler | None] = {}
        self._judges: dict[str, Judge] = {}
        self._serve: Serve | None = None
        self._relay_streams: dict[Any, list[Any]] = {}  # peer → its open relay streams, idle
        self._unserved: dict[Any, float] = {}  # peer → when it did not serve the relay protocol
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="trustmesh-mesh", daemon=True)
        # Signature checks release the GIL in part (two threads get ~1.6 of two cores
        # out of them; a process pool, passed as ``verifier``, gets both): a batch's
        # are spread over the cores, off the trio loop (which keeps moving other
        # messages meanwhile).
        self._workers = os.cpu_count() or 1
        self._own_pool = verifier is None
        self._pool = verifier or ThreadPoolExecutor(
            self._workers, thread_name_prefix="trustmesh-mesh-verify"
        )
        self.addrs: list[str] = []
        self.peer_id = ""

    @property
    def public_key(self) -> bytes:
        """This peer's Ed25519 public key (32 bytes): what a device binds to its did:key."""
        return bytes(self._key_pair.public_key.to_bytes())

    # --- the blocking API ------------------------------------------------------------

    def start(self) -> MeshPeer:
        self._thread.start()
        if not self._ready.wait(START_SECONDS):
            raise InvalidMeshMessage("the mesh peer did not start")
        if self._failure is not None:
            raise InvalidMeshMessage(f"the mesh peer did not start: {self._failure}")
        return self

    def connect(self, addr: str) -> None:
        """Dial a peer by its multiaddr (with its ``/p2p/`` id)."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except (ValueError, TypeError) as exc:
            raise InvalidMeshMessage(f"not a peer address {addr!r}: {exc}") from None
        try:
            self._call(self._host.connect, info)
        except InvalidMeshMessage:
            raise
        except Exception as exc:
            raise InvalidMeshMessage(f"cannot reach {addr}: {exc}") from None

    def join(self, addresses: list[str]) -> list[str]:
        """Dial each of ``addresses`` (bootstrap: from ``--peer`` or the Registry); one
        that cannot be reached is logged and the rest are still tried. The reached."""
        reached = []
        for address in addresses:
            try:
                self.connect(address)
            except InvalidMeshMessage as exc:
                log.warning("mesh: %s", exc)
                continue
            reached.append(address)
        return reached

    def subscribe(self, topic: str, handler: Handler | None) -> None:
        """Hand every valid message of ``topic`` to ``handler`` (in a worker thread);
        None: only relay the topic (this peer joins its mesh, validates and passes
        its messages on, and hands none to its own code: no thread per message)."""
        if topic not in TOPICS:
            raise InvalidMeshMessage(f"unknown topic {topic!r}")
        self._handlers[topic] = handler
        self._call(self._subscribe, topic)

    def judge(self, topic: str, judge: Judge) -> None:
        """Let ``judge`` (run in a worker thread) decide on others' messages of
        ``topic`` in place of its validator: a node judges a batch of readings by
        logging it, so that each signature is checked once, by its ingest."""
        if topic not in TOPICS:
            raise InvalidMeshMessage(f"unknown topic {topic!r}")
        self._judges[topic] = judge

    def serve(self, serve: Serve) -> None:
        """Answer requests on the relay protocol (:data:`~trustmesh.mesh.topics.RELAY`:
        a peer's requests one at a time on a stream it keeps open, each answered with
        messages) with ``serve``, run in a worker thread; a request is refused, and
        counted, as a message is."""
        self._serve = serve
        self._call(self._listen_relay)

    def ask(self, request: bytes, *, timeout: float, skip: str = "") -> list[bytes]:
        """``request`` on the relay protocol to each connected peer in turn (but
        ``skip``), until one answers with messages; those ([]: none did in time)."""
        answers: list[bytes] = self._call(self._ask, request, timeout, skip)
        return answers

    def check(self, topic: str, data: bytes) -> Verdict:
        """What this peer's validator says of ``data`` on ``topic``."""
        return envelope(data) or validate(topic, data, self.keys, self._verify)

    def publish(self, topic: str, data: bytes, *, trusted: bool = False) -> Verdict:
        """Publish ``data`` if its topic's validator passes it (what this peer would
        drop from others it does not send either); the verdict either way.
        ``trusted``: made and signed here just now (a device's own readings, a
        node's own receipts), so not checked again; only its size is."""
        verdict = envelope(data) or (
            Verdict(True) if trusted else validate(topic, data, self.keys, self._verify)
        )
        if verdict.accepted:
            self._call(self._pubsub.publish, topic, data)
        return verdict

    def peers(self, topic: str) -> int:
        """Peers this one knows to be subscribed to ``topic``."""
        return len(self._pubsub.peer_topics.get(topic, ()))

    def close(self) -> None:
        if self._token is not None and self._stop is not None:
            stop = self._stop
            with contextlib.suppress(trio.RunFinishedError):  # (it stopped on its own)
                trio.from_thread.run_sync(stop.set, trio_token=self._token)
        self._thread.join(START_SECONDS)
        if self._own_pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> MeshPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- inside the trio loop ----------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._token is None:
            raise InvalidMeshMessage("the mesh peer is not running")
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            raise InvalidMeshMessage(f"the mesh peer stopped: {self._failure!r}") from None

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self._failure = exc
            log.error("the mesh peer stopped: %r", exc)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._host = new_host(key_pair=self._key_pair, listen_addrs=[self._listen])
        router = GossipSub(protocols=[GOSSIPSUB], degree=6, degree_low=4, degree_high=12,
                           spam_protection_enabled=False, heartbeat_interval=1)  # fmt: skip
        self._pubsub = _Pubsub(self._host, router, validation_timeout=VALIDATION_SECONDS,
                               msg_id_constructor=lambda m: message_id(m.data))  # fmt: skip
        for topic in TOPICS:
            self._pubsub.set_topic_validator(topic, self._validator(topic), True)
        self._stop = trio.Event()
        async with (
            self._host.run(listen_addrs=[self._listen]),
            background_trio_service(self._pubsub),
            background_trio_service(router),
            trio.open_nursery() as nursery,
        ):
            self._nursery = nursery
            await self._pubsub.wait_until_ready()
            self.peer_id = str(self._host.get_id())
            self.addrs = [str(addr) for addr in self._host.get_addrs()]
            memoize_addrs(self._host)  # (listening now: read for every RPC sent, else)
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await self._host.close()
            self._pubsub.seen_messages.stop()  # its sweeping thread outlives the host else

    def _verify(self, items: list[Item]) -> list[str | None]:
        """Signature checks in parts, one per core."""
        return verify_in_pool(self._pool, items, -(-len(items) // self._workers))

    def _validator(self, topic: str) -> Callable[[Any, Any], Awaitable[bool]]:
        async def check(peer: Any, message: Any) -> bool:
            if peer == self._host.get_id():
                return True  # its own: publish() validated it
            if not self._within_rate(peer):
                verdict = Verdict(False, "over the rate a peer may send", kind="flood")
            else:
                verdict = await trio.to_thread.run_sync(self._judge, topic, bytes(message.data))
            self._count(topic, peer, verdict)
            return verdict.accepted

        return check

    def _count(self, topic: str, peer: Any, verdict: Verdict) -> None:
        if not verdict.accepted:
            self.rejected[verdict.kind] += 1
            self.on_drop(topic, verdict.kind)
            log.info("dropped a %s message from %s: %s", topic, peer, verdict.reason)
            if verdict.blame:
                self._strike(peer)
        else:
            self.taken[topic] += verdict.items

    def _judge(self, topic: str, data: bytes) -> Verdict:
        judge = self._judges.get(topic)
        if judge is None:
            return validate(topic, data, self.keys, self._verify)
        return envelope(data) or judge(data)

    async def _listen_relay(self) -> None:
        self._host.set_stream_handler(TProtocol(RELAY), self._answer)

    async def _answer(self, stream: Any) -> None:
        """A peer's relay stream: its requests answered one after another, until it
        ends it (a stream is kept open between requests: opening one costs more than
        a request here, ~12 ms of protocol negotiation)."""
        peer = stream.muxed_conn.peer_id
        try:
            while str(peer) not in self.banned:  # (a banned peer's stream is ended)
                request = await read_varint_prefixed_bytes_limited(stream, MAX_MESSAGE + 1)
                answers: list[bytes] = []
                if not self._within_rate(peer):
                    verdict = Verdict(False, "over the rate a peer may send", kind="flood")
                elif self._serve is None:
                    verdict = Verdict(False, "not served", kind="unserved")
                else:
                    verdict, answers = await trio.to_thread.run_sync(
                        self._serve, str(peer), request
                    )
                self._count(RELAY, peer, verdict)
                self.delivered[RELAY] += verdict.accepted
                await stream.write(
                    encode_uvarint(len(answers)) + b"".join(map(encode_varint_prefixed, answers))
                )
        except MessageTooLarge:
            oversized = Verdict(False, f"a request over {MAX_MESSAGE} bytes", kind="oversized")
            self._count(RELAY, peer, oversized)  # (its stream ends: the rest is unread)
        except Exception as exc:  # (the peer ended the stream, or broke the protocol)
            log.debug("mesh: a relay stream from %s ended: %r", peer, exc)
        finally:
            with contextlib.suppress(Exception), trio.CancelScope(shield=True):
                await stream.close()

    async def _ask(self, request: bytes, timeout: float, skip: str) -> list[bytes]:
        """Peers that answered before first; not those that did not serve the
        protocol within the last :data:`UNSERVED_SECONDS` (each try costs a
        protocol negotiation)."""
        now = trio.current_time()

        def worth_asking(peer: Any) -> bool:
            refused = self._unserved.get(peer)
            return str(peer) != skip and (refused is None or now - refused >= UNSERVED_SECONDS)

        peers = [peer for peer in self._host.get_connected_peers() if worth_asking(peer)]
        peers.sort(key=lambda peer: not self._relay_streams.get(peer))
        with trio.move_on_after(timeout):
            for peer in peers:
                answers = await self._ask_one(peer, request)
                if answers:
                    return answers
        return []

    async def _ask_one(self, peer: Any, request: bytes) -> list[bytes]:
        """``request`` on a relay stream to ``peer`` (an open one if it has one idle;
        one that fails is reset, and a new one tried once)."""
        idle = self._relay_streams.setdefault(peer, [])
        for reused in (bool(idle), False):
            if reused:
                stream = idle.pop()
            else:
                try:
                    stream = await self._host.new_stream(peer, [TProtocol(RELAY)])
                except Exception as exc:  # (a peer that does not serve the protocol, say)
                    log.debug("mesh: no relay stream to %s: %r", peer, exc)
                    if len(self._unserved) >= UNSERVED_KEPT:
                        self._unserved.clear()
                    self._unserved[peer] = trio.current_time()
                    return []
            answered = False
            try:
                await stream.write(encode_varint_prefixed(request))
                count = await decode_uvarint_from_stream(stream)
                if count > MAX_ANSWERS:
                    raise InvalidMeshMessage(f"{count} messages in an answer")
                answers = [await read_varint_prefixed_bytes_limited(stream, MAX_MESSAGE)
                           for _ in range(count)]  # fmt: skip
                answered = True
                return answers
            except Exception as exc:
                log.info("mesh: a relay request to %s failed: %r", peer, exc)
            finally:
                if answered:
                    idle.append(stream)
                else:
                    with contextlib.suppress(Exception), trio.CancelScope(shield=True):
                        await stream.reset()
            if not reused:
                break
        return []

    def _within_rate(self, peer: Any) -> bool:
        """A token bucket per peer: ``rate`` a second, ``burst`` at most."""
        now = trio.current_time()
        tokens, at = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1, now)
        return True

    def _strike(self, peer: Any) -> None:
        if peer == self._host.get_id():
            return
        self._strikes[peer] += 1
        if self._strikes[peer] >= self.strikes and str(peer) not in self.banned:
            self.banned.add(str(peer))
            log.warning("mesh: %s misbehaved %d times: disconnected", peer, self.strikes)
            self._pubsub.add_to_blacklist(peer)

    async def _subscribe(self, topic: str) -> None:
        subscription = await self._pubsub.subscribe(topic)
        handler = self._handlers.get(topic)
        if handler is None:  # relayed only: drained, handed to no one
            self._nursery.start_soon(self._discard, topic, subscription)
            return
        send, receive = trio.open_memory_channel[bytes](QUEUE)
        self._nursery.start_soon(self._drain, subscription, send)
        self._nursery.start_soon(self._deliver, topic, handler, receive)

    async def _drain(self, subscription: Any, send: Any) -> None:
        while True:
            message = await subscription.get()
            await send.send(bytes(message.data))

    async def _discard(self, topic: str, subscription: Any) -> None:
        while True:
            await subscription.get()
            self.delivered[topic] += 1

    async def _deliver(self, topic: str, handler: Handler, receive: Any) -> None:
        async for data in receive:
            await trio.to_thread.run_sync(handler, data)
            self.delivered[topic] += 1
