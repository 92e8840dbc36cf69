"""Watchers over the mesh: a log that shows one watcher one tree and gossips
another checkpoint of it on the mesh is caught by that watcher from the
checkpoint alone (it was never sent it directly, knows no other watcher) and
proven on-chain: the log's stake is slashed. Embedded chain and anvil."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from typing import Any

import httpx

from tests.services import wait_until
from trustmesh.chain.client import ChainClient
from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite
from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key, key_from_did
from trustmesh.log.note import LineVerifier
from trustmesh.log.note_p256 import LogSigner
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.topics import CHECKPOINTS
from trustmesh.mesh.validate import Keys
from trustmesh.reading import sign_reading
from trustmesh.sim.attack import MIN_STAKE, REWARD_BPS, ChainSetup
from trustmesh.sim.lognode import SimLog
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

DEADLINE_S = 60


def test_a_split_view_heard_on_the_mesh_is_proven(chain: ChainSetup) -> None:
    operator, owner, watching = (ChainClient(chain.w3, a) for a in chain.accounts[:3])
    deployment = deploy_suite(operator, min_stake=MIN_STAKE, unbonding_delay=3600,
                              reward_bps=REWARD_BPS)  # fmt: skip
    with ExitStack() as stack:
        origin = f"split.example/{os.urandom(4).hex()}"
        signer = LogSigner.from_seed(origin, os.urandom(32))
        log = SimLog(signer, LogAnchor(operator, deployment), epoch=3600, checkpoint_interval=3600,
                     views=2)  # fmt: skip
        registry = Registry(operator, deployment)
        registry.register_log(signer, log.url, MIN_STAKE)
        log.start()
        stack.callback(log.stop)
        device = SoftwareSigner.generate()
        Registry(owner, deployment).register_device(did_from_key(device.public_key), MIN_STAKE)
        for seq in range(1, 6):
            log.append(sign_reading(device, seq=seq, ts=seq, sensor="t", value=seq))
        log.diverge(sign_reading(device, seq=6, ts=6, sensor="t", value=6),
                    sign_reading(device, seq=7, ts=7, sensor="t", value=7))  # fmt: skip
        log.sign()  # each view's checkpoint: one shown to the watcher, one gossiped

        def device_key(did: str, seq: int) -> PublicKey | None:
            return key_from_did(did)

        def log_key(name: str) -> LineVerifier | None:
            return signer.verifier if name == origin else None

        keys = Keys(device_key, log_key)
        gossiper, heard = MeshPeer(keys).start(), MeshPeer(keys).start()
        stack.callback(gossiper.close)
        stack.callback(heard.close)
        heard.connect(gossiper.addrs[0])
        http = stack.enter_context(httpx.Client(timeout=30))
        events: list[dict[str, Any]] = []
        watcher = Watcher([log.url], http, chain=ChainView(watching, deployment),
                          report=events.append, mesh=heard)  # fmt: skip
        stack.callback(watcher.close)
        wait_until(lambda: gossiper.peers(CHECKPOINTS) >= 1, "the watcher's subscription")
        assert gossiper.publish(CHECKPOINTS, log.views[1].note.encode()).accepted
        before = int(registry.node(origin)["stake"])

        def proven() -> bool:
            return any(e["event"] == "proof" and e.get("accepted") for e in events)

        deadline = time.monotonic() + DEADLINE_S
        while not proven() and time.monotonic() < deadline:
            watcher.tick()  # polls the log, compares what the mesh brought, proves
        assert proven(), events
        alerts = [e for e in events if e["event"] == "alert"]
        assert [a["kind"] for a in alerts] == ["split-view"], alerts
        assert before > 0 and int(registry.node(origin)["stake"]) == 0
