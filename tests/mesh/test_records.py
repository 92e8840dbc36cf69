"""Signed peer records made and checked once (trustmesh.mesh._records): a record
is checked again when it changes, when it comes from another peer or to another
host, after RECHECK_SECONDS, and after a check that failed; a host's addresses
are read again once a second; installing twice wraps once."""

from __future__ import annotations

import libp2p.pubsub.gossipsub
import libp2p.pubsub.pubsub
import pytest
from libp2p.pubsub.pb import rpc_pb2

from trustmesh.mesh import _records

CONSUME = "maybe_consume_signed_record"


class Host:  # (the records' cache is per host, which it holds weakly)
    def __init__(self) -> None:
        self.reads = 0

    def get_addrs(self) -> list[str]:
        self.reads += 1
        return [f"/ip4/127.0.0.1/tcp/{4000 + self.reads}"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_records, "now", clock)
    return clock


def test_a_record_is_checked_once_until_it_changes(clock: Clock) -> None:
    checked: list[tuple[bytes, object, str]] = []
    verdicts = {b"good": True, b"newer": True, b"forged": False}

    def consume(rpc: rpc_pb2.RPC, host: object, peer: str) -> bool:
        checked.append((rpc.senderRecord, host, peer))
        return verdicts[rpc.senderRecord]

    once = _records._once(consume)
    host, other = Host(), Host()
    for _ in range(3):
        assert once(rpc_pb2.RPC(senderRecord=b"good"), host, "peer-a")
    assert len(checked) == 1
    assert once(rpc_pb2.RPC(senderRecord=b"good"), host, "peer-b")  # another peer
    assert once(rpc_pb2.RPC(senderRecord=b"good"), other, "peer-a")  # another host
    assert once(rpc_pb2.RPC(senderRecord=b"newer"), host, "peer-a")  # a changed record
    assert len(checked) == 4
    assert once(rpc_pb2.RPC(), host, "peer-a")  # none sent: nothing to check
    assert len(checked) == 4
    for _ in range(2):  # a record refused is refused each time
        assert not once(rpc_pb2.RPC(senderRecord=b"forged"), host, "peer-a")
    assert len(checked) == 6
    assert once(rpc_pb2.RPC(senderRecord=b"newer"), host, "peer-a")  # (still the one taken)
    assert len(checked) == 6
    clock.now += _records.RECHECK_SECONDS
    assert once(rpc_pb2.RPC(senderRecord=b"newer"), host, "peer-a")  # checked again
    assert [record for record, _, _ in checked[6:]] == [b"newer"]


def test_a_hosts_addresses_are_read_once_a_second(clock: Clock) -> None:
    host = Host()
    _records.memoize_addrs(host)
    first = host.get_addrs()
    assert host.get_addrs() == first and host.reads == 1
    clock.now += 0.5
    assert host.get_addrs() == first and host.reads == 1
    clock.now += 0.5
    assert host.get_addrs() != first and host.reads == 2


def test_install_wraps_pubsub_and_gossipsub_once() -> None:
    _records.install()
    wrapped = getattr(libp2p.pubsub.pubsub, CONSUME)
    _records.install()
    assert getattr(libp2p.pubsub.pubsub, CONSUME) is wrapped
    assert getattr(wrapped, "once", False)
    assert getattr(getattr(libp2p.pubsub.gossipsub, CONSUME), "once", False)
