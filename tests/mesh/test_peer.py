"""Mesh peers on loopback (real libp2p, gossipsub): a device's batches relayed
through a middle peer reach a peer not connected to the publisher; forged,
malformed or replayed messages are dropped at the first peer, counted by reason,
never forwarded; closing a peer leaves no thread of its own behind."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import trio

from tests.services import wait_until
from trustmesh.batch_verify import verify_items
from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key
from trustmesh.log.note import LineVerifier
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.relay import Relay, request
from trustmesh.mesh.topics import MAX_MESSAGE, READINGS, RELAY
from trustmesh.mesh.validate import Keys
from trustmesh.reading import sign_reading

DEVICE = SoftwareSigner.generate()
T = TypeVar("T")


def _keys() -> Keys:
    def device(did: str, seq: int) -> PublicKey | None:
        return DEVICE.public_key if did == did_from_key(DEVICE.public_key) else None

    def log(origin: str) -> LineVerifier | None:
        return None

    return Keys(device, log)


def _batch(first: int, count: int = 10) -> bytes:
    return b"".join(sign_reading(DEVICE, seq=first + k, ts=first, sensor="t", value=k)
                    for k in range(count))  # fmt: skip


@pytest.fixture
def line() -> Iterator[tuple[MeshPeer, MeshPeer, MeshPeer, list[bytes]]]:
    """Peers a — b — c (a does not know c); c keeps what it is handed."""
    peers = [MeshPeer(_keys()).start() for _ in range(3)]
    a, b, c = peers
    got: list[bytes] = []
    lock = threading.Lock()

    def keep(data: bytes) -> None:
        with lock:
            got.append(data)

    try:
        c.subscribe(READINGS, keep)
        for peer in (a, b):
            peer.subscribe(READINGS, None)  # a relays to b, b to c
        a.connect(b.addrs[0])
        b.connect(c.addrs[0])
        wait_until(lambda: a.peers(READINGS) >= 1 and b.peers(READINGS) >= 2, "the mesh")
        yield a, b, c, got
    finally:
        for peer in peers:
            peer.close()


def test_batches_reach_a_peer_through_a_relay(line: tuple[MeshPeer, MeshPeer, MeshPeer,
                                                          list[bytes]]) -> None:  # fmt: skip
    a, _, _, got = line
    sent = [_batch(10 * k) for k in range(60)]
    for batch in sent:
        assert a.publish(READINGS, batch).accepted
    wait_until(lambda: len(got) >= len(sent), "every batch at c", seconds=30)
    assert sorted(got) == sorted(sent)


def test_bad_messages_are_dropped_at_the_first_peer(line: tuple[MeshPeer, MeshPeer, MeshPeer,
                                                                list[bytes]]) -> None:  # fmt: skip
    a, b, c, got = line
    forged = bytearray(_batch(1_000))
    forged[-1] ^= 1
    stranger = sign_reading(SoftwareSigner.generate(), seq=1, ts=1, sensor="t", value=1)
    refused = [bytes(forged), b"\x84junk", stranger]
    for data in refused:
        assert not a.publish(READINGS, data).accepted  # a checks its own too
    # a turned liar: it validates nothing and publishes them anyway; b drops them
    trio.from_thread.run_sync(a._pubsub.remove_topic_validator, READINGS, trio_token=a._token)
    for data in refused:
        a._call(a._pubsub.publish, READINGS, data)
    wait_until(lambda: sum(b.rejected.values()) >= len(refused), "b's refusals")
    sentinel = _batch(2_000)
    assert a.publish(READINGS, sentinel).accepted
    assert a.publish(READINGS, sentinel).accepted  # a replay: the same message id
    wait_until(lambda: sentinel in got, "the sentinel at c")
    assert not set(refused) & set(got) and got.count(sentinel) == 1
    assert sum(c.rejected.values()) == 0  # nothing bad was forwarded to c
    assert b.rejected == {"bad-reading": 1, "malformed": 1, "unknown-device": 1}


def test_closing_leaves_no_thread_behind() -> None:
    before = {t.ident for t in threading.enumerate()}
    MeshPeer(_keys()).start().close()
    left = [t for t in threading.enumerate() if t.ident not in before]
    assert not [t for t in left if not t.name.startswith("Trio thread")], left


class _Counting(ThreadPoolExecutor):
    """An executor that counts what it is given."""

    submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_signatures_are_checked_where_the_caller_says() -> None:
    forged = bytearray(_batch(1))
    forged[-1] ^= 1
    with _Counting(2) as pool:
        peer = MeshPeer(_keys(), verifier=pool).start()
        try:
            assert peer.publish(READINGS, _batch(100)).accepted
            refused = peer.publish(READINGS, bytes(forged))
            assert not refused.accepted and refused.kind == "bad-reading"
            assert pool.submitted >= 2  # both batches' signatures were checked there
        finally:
            peer.close()
        assert pool.submit(verify_items, []).result() == []  # the caller's: still open


def _liar(target: MeshPeer) -> MeshPeer:
    """A peer that validates nothing, connected to ``target``."""
    liar = MeshPeer(_keys()).start()
    liar.subscribe(READINGS, lambda data: None)
    liar.connect(target.addrs[0])
    wait_until(lambda: liar.peers(READINGS) >= 1, "the target's subscription")
    trio.from_thread.run_sync(liar._pubsub.remove_topic_validator, READINGS,
                              trio_token=liar._token)  # fmt: skip
    return liar


def test_a_peer_that_floods_or_keeps_lying_is_disconnected() -> None:
    guard = MeshPeer(_keys(), rate=20, burst=20, strikes=5).start()
    guard.subscribe(READINGS, lambda data: None)
    liars: list[MeshPeer] = []
    try:
        liars.append(liar := _liar(guard))
        for k in range(30):  # junk, each different
            liar._call(liar._pubsub.publish, READINGS, b"\x5a\xff\xff\xff\xff" + bytes([k]))
        wait_until(lambda: liar.peer_id in guard.banned, "the liar's ban")
        assert guard.rejected["malformed"] >= 5
        liars.append(flooder := _liar(guard))
        for k in range(200):  # valid readings, faster than the guard takes from one peer
            flooder._call(flooder._pubsub.publish, READINGS, _batch(10_000 + k, 1))
        wait_until(lambda: flooder.peer_id in guard.banned, "the flooder's ban")
        assert guard.rejected["flood"] >= 5
    finally:
        for peer in (*liars, guard):
            peer.close()


def test_a_peer_that_floods_the_relay_protocol_is_cut_off() -> None:
    """Requests on relay streams draw on the same allowance as messages: past it,
    each is refused as a flood, and a peer refused ``strikes`` times is banned and
    its stream ended (nothing it asks is answered, or served, again)."""
    relay = MeshPeer(_keys(), rate=0.001, burst=3, strikes=2).start()
    asker = MeshPeer(_keys()).start()
    try:
        Relay(relay).start()
        asker.connect(relay.addrs[0])
        for k in range(3):  # within the allowance: served (the relay knows no node)
            assert asker.ask(request(_batch(100 * k + 1)), timeout=10) == []
        assert relay.rejected == Counter({"no-route": 3})
        for k in range(3):  # past it
            assert asker.ask(request(_batch(1_000 + k)), timeout=10) == []
        assert relay.rejected["flood"] == 2 and asker.peer_id in relay.banned
        assert relay.taken[RELAY] == 0
    finally:
        asker.close()
        relay.close()


def test_an_oversized_relay_request_is_dropped_and_counted() -> None:
    relay, asker = MeshPeer(_keys()).start(), MeshPeer(_keys()).start()
    try:
        Relay(relay).start()
        asker.connect(relay.addrs[0])
        assert asker.ask(request(bytes(MAX_MESSAGE + 1)), timeout=10) == []
        wait_until(lambda: relay.rejected["oversized"] >= 1, "the relay's count")
        assert relay.rejected == Counter({"oversized": 1}) and relay.taken[RELAY] == 0
        assert asker.ask(request(_batch(1)), timeout=10) == []  # (served: the relay knows
        assert relay.rejected["no-route"] == 1  # no node)
    finally:
        asker.close()
        relay.close()
