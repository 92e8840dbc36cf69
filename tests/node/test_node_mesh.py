"""Partition survival: a device that reaches no node hands its outbox to a mesh
peer; a relay it knows passes the batches to a node on the mesh, the receipts
come back the same way, and every reading leaves the outbox only with a receipt
checked against the node's log key, exactly as over HTTP."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.node.conftest import RunningNode
from tests.services import wait_until
from trustmesh.device import Device, MeshLink, MeshRoute, Outbox, Uplink, bind_peer
from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key, key_from_did
from trustmesh.log import merkle
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.log.receipt import open_receipt
from trustmesh.mesh.binding import read_binding
from trustmesh.mesh.peer import MeshPeer, peer_id_of
from trustmesh.mesh.topics import READINGS, RECEIPTS, WITNESS
from trustmesh.mesh.validate import Keys

READINGS_SENT = 40


def test_a_partitioned_device_is_receipted_through_a_relay(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    node = start_node(epoch=0.5, mesh=True)
    assert node.info["mesh"], node.info
    log_key = NoteVerifier.from_vkey(node.info["verifier_key"])

    def device_key(did: str, seq: int) -> PublicKey | None:
        return key_from_did(did)

    def log_verifier(origin: str) -> LineVerifier | None:
        return log_key if origin == log_key.name else None

    keys = Keys(device_key, log_verifier)
    device = Device(SoftwareSigner.generate(), tmp_path / "device.seq")
    registered = httpx.post(f"{node.url}/v1/devices", json={"did": device.did}, timeout=60)
    assert registered.status_code == 200, registered.text
    relay, own = MeshPeer(keys).start(), MeshPeer(keys).start()
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        for topic in (READINGS, RECEIPTS):
            relay.subscribe(topic, None)  # only relays them
        relay.connect(node.info["mesh"][0])
        own.connect(relay.addrs[0])  # the device knows the relay only
        uplink = Uplink(device, outbox, [MeshRoute(own, log_key)], max_wait=0.5)
        binding = bind_peer(device, uplink, own)  # its peer's key, signed by the device key
        for k in range(READINGS_SENT - 1):
            uplink.record("temperature", 20 + k % 7)
        wait_until(lambda: relay.peers(READINGS) >= 1, "the node's subscription at the relay")
        stop = threading.Event()
        worker = threading.Thread(target=uplink.drain, args=(stop,))
        worker.start()
        worker.join(120)
        stop.set()
        assert len(outbox) == 0, f"{len(outbox)} readings still queued"
        receipts = outbox.receipts()
        assert len(receipts) == READINGS_SENT
        assert {origin for origin, _ in receipts.values()} == {log_key.name}
        logged = httpx.get(f"{node.url}/v1/devices/{device.did}/readings",
                           params={"limit": "100"}, timeout=30).json()  # fmt: skip
        assert len(logged["readings"]) == READINGS_SENT, logged.keys()
        bound = read_binding(base64.b64decode(logged["readings"][-1]["entry"]))  # (its seq: 1)
        assert bound.did == device.did and peer_id_of(bound.peer_key) == own.peer_id
        assert base64.b64decode(logged["readings"][-1]["entry"]) == binding
        assert uplink.sent_to == {f"the mesh (for {log_key.name})": READINGS_SENT}
        panel = httpx.get(f"{node.url}/ui/mesh", timeout=10).text  # the dashboard's view
        taken = int(panel.split("id='relayed-readings'>")[1].split("<")[0])
        readings = int(panel.split("id='items-readings'>")[1].split("<")[0])
        assert readings >= READINGS_SENT  # every reading the node took from the mesh
        assert taken >= 1 and "dropped: nothing" in panel
    finally:
        outbox.close()
        relay.close()
        own.close()


def test_what_a_peer_sends_wrong_is_dropped_and_counted_by_the_node(
    start_node: Callable[..., RunningNode],
) -> None:
    """A peer that validates nothing sends the node forged and malformed batches:
    the node's peer drops each, counts it in /metrics, and logs none of it."""
    import trio

    from trustmesh.reading import sign_reading

    node = start_node(epoch=0.5, mesh=True)
    keys = Keys(lambda did, seq: key_from_did(did), lambda origin: None)
    liar = MeshPeer(keys).start()
    try:
        liar.subscribe(READINGS, lambda data: None)
        liar.connect(node.info["mesh"][0])
        wait_until(lambda: liar.peers(READINGS) >= 1, "the node's subscription")
        trio.from_thread.run_sync(liar._pubsub.remove_topic_validator, READINGS,
                                  trio_token=liar._token)  # fmt: skip
        signer = SoftwareSigner.generate()
        sent = iter(range(1, 10**6))

        def send_bad() -> None:
            """A forged reading and a malformed batch, new ones each time (gossip is
            best effort, and a message seen once is not taken again)."""
            n = next(sent)
            forged = bytearray(sign_reading(signer, seq=n, ts=n, sensor="t", value=n))
            forged[-1] ^= 1
            for data in (bytes(forged), b"\x5a\xff\xff\xff\xff" + n.to_bytes(4, "big")):
                liar._call(liar._pubsub.publish, READINGS, data)

        def dropped() -> dict[str, float]:
            text = httpx.get(f"{node.url}/metrics", timeout=10).text
            return {
                line.split('kind="')[1].split('"')[0]: float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("trustmesh_mesh_dropped_total{")
            }

        def counted() -> bool:
            send_bad()
            found = dropped()
            return found.get("bad-reading", 0) >= 1 and found.get("malformed", 0) >= 1

        wait_until(counted, "the node's counts of what it dropped", pause=0.5)
        assert set(dropped()) == {"bad-reading", "malformed"}
        assert httpx.get(f"{node.url}/v1/log", timeout=10).json()["size"] == 0
    finally:
        liar.close()


def test_trustmesh_watch_joins_the_mesh(start_node: Callable[..., RunningNode]) -> None:
    """`trustmesh watch --mesh-peer ADDR` joins through the node's peer and runs, and
    so does `--mesh` through the peers the Registry lists (the node published its
    own); a bad address is refused by name."""
    from tests.cli.command import no_traceback, trustmesh

    node = start_node(epoch=0.5, mesh=True)
    ran = trustmesh("watch", "--node", node.url, "--once", "--mesh-peer", node.info["mesh"][0])
    no_traceback(ran)
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    assert json.loads(ran.stdout.decode().strip().splitlines()[-1])["findings"] == 0
    joined = trustmesh("watch", "--node", node.url, "--once", "--mesh")  # via the Registry
    no_traceback(joined)
    assert joined.returncode == 0, joined.stderr.decode()[-2000:]
    refused = trustmesh("watch", "--node", node.url, "--once", "--mesh-peer", "/ip4/nowhere")
    no_traceback(refused)
    assert refused.returncode == 2 and "not a peer address" in refused.stderr.decode()
    peer_id = node.info["mesh"][0].rsplit("/", 1)[-1]
    closed = trustmesh("watch", "--node", node.url, "--once", "--mesh-peer",
                       f"/ip4/127.0.0.1/tcp/9/p2p/{peer_id}")  # fmt: skip
    no_traceback(closed)
    assert closed.returncode == 2 and "cannot reach" in closed.stderr.decode()


Member = tuple[Device, Outbox, Uplink]


def _record_and_drain(fleet: list[Member], rounds: int) -> None:
    """Each device records a reading and drains its outbox, all at once, ``rounds`` times."""
    for _ in range(rounds):
        for _device, _outbox, uplink in fleet:
            uplink.record("temperature", 21)
        threads = [threading.Thread(target=uplink.drain) for _d, _o, uplink in fleet]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)


def test_a_partitioned_part_of_the_fleet_loses_nothing(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """Ten devices record throughout; three of them (30%) lose their way to the node
    for a phase (their HTTP route points nowhere) and reach it through a relay on
    the mesh; then the partition heals. Every reading ends logged once, with a
    verified receipt, and every outbox empty."""
    node = start_node(epoch=0.5, mesh=True)
    log_key = NoteVerifier.from_vkey(node.info["verifier_key"])

    def log_verifier(origin: str) -> LineVerifier | None:
        return log_key if origin == log_key.name else None

    keys = Keys(lambda did, seq: key_from_did(did), log_verifier)
    relay = MeshPeer(keys).start()
    peers = [relay]
    fleet: list[Member] = []
    try:
        for topic in (READINGS, RECEIPTS):
            relay.subscribe(topic, lambda data: None)
        relay.connect(node.info["mesh"][0])
        wait_until(lambda: relay.peers(READINGS) >= 1, "the node's subscription")
        for k in range(10):
            device = Device(SoftwareSigner.generate(), tmp_path / f"d{k}.seq")
            answer = httpx.post(f"{node.url}/v1/devices", json={"did": device.did}, timeout=60)
            assert answer.status_code == 200, answer.text
            outbox = Outbox(tmp_path / f"d{k}.db")
            routes: list[str | MeshRoute] = [node.url]
            if k < 3:  # partitioned: no way to the node but the mesh
                peers.append(own := MeshPeer(keys).start())
                own.connect(relay.addrs[0])
                routes = ["http://127.0.0.1:9", MeshRoute(own, log_key)]
            fleet.append((device, outbox, Uplink(device, outbox, routes, max_wait=0.5)))
        _record_and_drain(fleet, 3)  # 30% partitioned
        mesh_sent = sum(u.sent_over_mesh for _d, _o, u in fleet[:3])
        assert mesh_sent == 9  # the partitioned devices' readings all went over the mesh
        for _d, _o, uplink in fleet[:3]:
            uplink.nodes.insert(0, node.url)  # healed: the node is reachable again
        _record_and_drain(fleet, 3)
        for device, outbox, _uplink in fleet:
            assert len(outbox) == 0 and len(outbox.receipts()) == 6, device.did
            logged = httpx.get(f"{node.url}/v1/devices/{device.did}/readings",
                               params={"limit": "100"}, timeout=30).json()["readings"]  # fmt: skip
            assert len(logged) == 6
        assert httpx.get(f"{node.url}/v1/log", timeout=10).json()["size"] == 60
    finally:
        for _d, outbox, uplink in fleet:
            uplink.close()
            outbox.close()
        for peer in peers:
            peer.close()


def _log_keys(node: RunningNode) -> tuple[NoteVerifier, Keys]:
    log_key = NoteVerifier.from_vkey(node.info["verifier_key"])

    def log_verifier(origin: str) -> LineVerifier | None:
        return log_key if origin == log_key.name else None

    return log_key, Keys(lambda did, seq: key_from_did(did), log_verifier)


def test_a_batch_whose_receipts_never_came_is_sent_again_and_answered(
    start_node: Callable[..., RunningNode],
) -> None:
    """The first send reaches a relay that is cut off from the node and then goes
    away: no receipt. Sent again (as a device does) through another relay, it is
    answered, although the mesh drops a message it has seen before as a replay
    (the device's own peer has seen this one): a resend is a new message."""
    from libp2p.pubsub.gossipsub import GossipSub

    from trustmesh.device import MeshLink
    from trustmesh.log import merkle
    from trustmesh.log.receipt import open_receipt
    from trustmesh.reading import sign_reading

    node = start_node(epoch=0.5, mesh=True)
    log_key, keys = _log_keys(node)
    signer = SoftwareSigner.generate()
    device = httpx.post(f"{node.url}/v1/devices",
                        json={"did": did_from_key(signer.public_key)}, timeout=60)  # fmt: skip
    assert device.status_code == 200, device.text
    entries = [sign_reading(signer, seq=k, ts=int(time.time() * 1000), sensor="t", value=k)
               for k in range(1, 6)]  # fmt: skip
    lost, relay, own = (MeshPeer(keys).start() for _ in range(3))
    try:
        for peer in (lost, relay):
            for topic in (READINGS, RECEIPTS):
                peer.subscribe(topic, None)  # only relay them
        own.connect(lost.addrs[0])
        link = MeshLink(MeshRoute(own, log_key), timeout=1.0)
        wait_until(lambda: own.peers(READINGS) >= 1, "the first relay's subscription")
        assert link.exchange(entries) == {}  # the first relay reaches no node
        wait_until(lambda: lost.delivered[READINGS] >= 1, "the batch at the first relay")
        lost.close()
        # Past gossip's own recovery (a peer offers a new peer what it holds): the
        # first send is gone from the device's message cache, not from its seen set.
        router = own._pubsub.router
        assert isinstance(router, GossipSub)
        history = router.mcache.history
        wait_until(lambda: not any(history), "the device's message cache to let the batch go")
        relay.connect(node.info["mesh"][0])
        own.connect(relay.addrs[0])
        wait_until(lambda: own.peers(READINGS) >= 1 and relay.peers(READINGS) >= 2,
                   "the way through the second relay")  # fmt: skip
        link.timeout = 30.0
        answers = link.exchange(entries)
        assert len(answers) == len(entries)
        for entry in entries:
            leaf = merkle.leaf_hash(entry)
            open_receipt(answers[leaf.hex()]["proof"], leaf, log_key, log_key.name)
    finally:
        for peer in (lost, relay, own):
            peer.close()


def test_a_valid_batch_the_node_does_not_log_is_not_held_against_its_relay(
    start_node: Callable[..., RunningNode],
) -> None:
    """Batches of a device the node does not know are signed rightly: the node logs
    none of them and counts them ("not-logged"), but the peer that passed them on
    did nothing wrong and is not disconnected, however many it passes."""
    from trustmesh.reading import sign_reading

    node = start_node(epoch=0.5, mesh=True)
    _, keys = _log_keys(node)
    peer = MeshPeer(keys).start()
    stranger = SoftwareSigner.generate()  # not registered at the node
    known = SoftwareSigner.generate()
    registered = httpx.post(f"{node.url}/v1/devices",
                            json={"did": did_from_key(known.public_key)}, timeout=60)  # fmt: skip
    assert registered.status_code == 200, registered.text
    try:
        peer.subscribe(READINGS, lambda data: None)
        peer.connect(node.info["mesh"][0])
        wait_until(lambda: peer.peers(READINGS) >= 1, "the node's subscription")
        now = int(time.time() * 1000)
        for k in range(1, 31):  # more than a peer's strikes (20)
            reading = sign_reading(stranger, seq=k, ts=now, sensor="t", value=k)
            assert peer.publish(READINGS, reading).accepted

        def not_logged() -> float:
            text = httpx.get(f"{node.url}/metrics", timeout=10).text
            lines = [line for line in text.splitlines() if 'kind="not-logged"' in line]
            return float(lines[0].split()[-1]) if lines else 0.0

        wait_until(lambda: not_logged() >= 30, "the node's count of batches it did not log")
        assert httpx.get(f"{node.url}/v1/log", timeout=10).json()["size"] == 0
        assert peer.publish(
            READINGS, sign_reading(known, seq=1, ts=now, sensor="t", value=1)
        ).accepted
        wait_until(lambda: httpx.get(f"{node.url}/v1/log", timeout=10).json()["size"] == 1,
                   "the known device's reading, through the same peer")  # fmt: skip
    finally:
        peer.close()


def test_neighbours_witness_a_challenge_over_the_mesh(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """A device challenges its neighbourhood on the mesh; the neighbour in range
    answers there, the one out of range does not; the node logs both readings as
    it hears them (before any uplink sends them), and the reputation rules turn
    them into an attestation. The neighbour's uplink then drains its copy: a
    duplicate, receipted at the same index."""
    from trustmesh.device import MeshWitness
    from trustmesh.reading import parse_reading
    from trustmesh.reputation.witness import WitnessRules, judge
    from trustmesh.reputation.witness import subject_id as subject

    node = start_node(epoch=0.5, mesh=True)
    _, keys = _log_keys(node)
    members: list[tuple[Device, Uplink, Outbox, MeshWitness, MeshPeer]] = []
    try:
        for k, pos in enumerate([(0, 0), (300, 0), (5_000, 0)]):
            device = Device(SoftwareSigner.generate(), tmp_path / f"w{k}.seq")
            answer = httpx.post(f"{node.url}/v1/devices", json={"did": device.did}, timeout=60)
            assert answer.status_code == 200, answer.text
            outbox = Outbox(tmp_path / f"w{k}.db")
            uplink = Uplink(device, outbox, [node.url], max_wait=0.5)
            peer = MeshPeer(keys).start()
            peer.connect(node.info["mesh"][0])  # (each knows the node's peer only)
            witness = MeshWitness(peer, device, uplink, pos, lambda: 21.0)
            members.append((device, uplink, outbox, witness, peer))
        wait_until(lambda: all(m[4].peers(WITNESS) >= 1 for m in members), "the node's peer")
        challenger, near, far = members
        challenge = challenger[3].challenge(21.4)
        wait_until(lambda: near[3].answered == 1, "the answer of the neighbour in range")
        wait_until(lambda: far[4].delivered[WITNESS] >= 2, "the far device hearing both")
        assert far[3].answered == 0  # 5 km away: out of range

        def logged(device: Device) -> list[bytes]:
            found = httpx.get(f"{node.url}/v1/devices/{device.did}/readings", timeout=30).json()
            return [base64.b64decode(bundle["entry"]) for bundle in found["readings"]]

        wait_until(lambda: len(logged(near[0])) == 1, "the answer logged from the mesh")
        assert logged(challenger[0]) == [challenge] and len(near[2]) == 1  # (not sent by it)
        verdict = judge([parse_reading(e) for m in members for e in logged(m[0])], WitnessRules())
        assert [(a.witness, a.subject, a.agrees) for a in verdict.attestations] == [
            (subject(near[0].did), subject(challenger[0].did), True)
        ]
        near[1].drain()  # its copy: a duplicate, answered with the same receipt
        assert len(near[2]) == 0 and len(near[2].receipts()) == 1
        assert len(logged(near[0])) == 1
    finally:
        for _device, uplink, outbox, _witness, peer in members:
            uplink.close()
            outbox.close()
            peer.close()


def test_a_batch_asked_for_on_streams_through_a_relay(
    start_node: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """A device whose neighbour serves the relay protocol asks for its batch's
    receipts on a stream: the relay checks the readings and the receipts, the node
    logs the batch, and nothing goes by gossip. A forged batch, a request with
    more hops than any and one with none left are refused at the relay, counted,
    never logged; the device then falls back to gossip, which drops the forgery
    too."""
    from trustmesh.mesh.relay import HOPS, Relay, request
    from trustmesh.mesh.topics import RELAY
    from trustmesh.reading import sign_reading

    node = start_node(epoch=0.5, mesh=True)
    log_key = NoteVerifier.from_vkey(node.info["verifier_key"])

    def log_verifier(origin: str) -> LineVerifier | None:
        return log_key if origin == log_key.name else None

    keys = Keys(lambda did, seq: key_from_did(did), log_verifier)
    signer = SoftwareSigner.generate()
    did = did_from_key(signer.public_key)
    httpx.post(f"{node.url}/v1/devices", json={"did": did}, timeout=60).raise_for_status()
    relay, own = MeshPeer(keys).start(), MeshPeer(keys).start()
    try:
        Relay(relay).start()
        relay.connect(node.info["mesh"][0])
        own.connect(relay.addrs[0])
        link = MeshLink(MeshRoute(own, log_key), timeout=10)
        wait_until(lambda: own.peers(READINGS) >= 1, "the device's mesh")
        for first in (1, 51):  # twice: the second on the stream the first opened
            now = int(time.time() * 1000)
            entries = [sign_reading(signer, seq=seq, ts=now, sensor="t", value=seq)
                       for seq in range(first, first + 50)]  # fmt: skip
            answers = link.exchange(entries)
            assert len(answers) == 50
            for entry in entries:  # each a tlog-proof of it under the node's key
                answer = answers[merkle.leaf_hash(entry).hex()]
                open_receipt(answer["proof"], merkle.leaf_hash(entry), log_key, log_key.name)
        assert relay.taken[RELAY] == 100 and relay.delivered[RELAY] == 2
        assert relay.taken[READINGS] == 0  # (nothing came by gossip)
        assert httpx.get(f"{node.url}/v1/log", timeout=10).json()["size"] == 100

        forged = bytearray(sign_reading(signer, seq=101, ts=int(time.time() * 1000),
                                        sensor="t", value=1))  # fmt: skip
        forged[-1] ^= 1
        for wrong in (request(bytes(forged)), bytes([HOPS + 1]) + bytes(forged),
                      request(bytes(forged), hops=0)):  # fmt: skip
            assert own.ask(wrong, timeout=10) == []
        assert relay.rejected == Counter({"bad-reading": 1, "malformed": 1, "no-route": 1})
        assert link.exchange([bytes(forged)]) == {}  # asked, refused; then gossiped, dropped
        assert relay.rejected["bad-reading"] == 3
        assert httpx.get(f"{node.url}/v1/log", timeout=10).json()["size"] == 100
        panel = httpx.get(f"{node.url}/ui/mesh", timeout=10).text  # the node's dashboard
        assert int(panel.split("id='items-relay'>")[1].split("<")[0]) == 100
    finally:
        relay.close()
        own.close()
