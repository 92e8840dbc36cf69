"""A watcher proves every kind of aggregate lie without help: claims are posted
over a log it follows, their data kept by a node's claim shelf, and the watcher
judges each against its own copy of the log, proves each lie on-chain (the claim
refuted, the watcher paid) and leaves the honest claim standing. On the embedded
chain and on anvil."""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from tests.aggregate.lies import KINDS, lies
from trustmesh._problems import Problem, on_problem
from trustmesh._server import ThreadedServer
from trustmesh.aggregate import Model, Query, Reduction
from trustmesh.aggregate.claim import Claim, LoggedReading, build, encode
from trustmesh.aggregate.tree import Leaf
from trustmesh.chain.aggregates import AggregatesContract
from trustmesh.chain.client import ChainClient
from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite, origin_id
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.merkle import leaf_hash
from trustmesh.log.note_p256 import LogSigner
from trustmesh.node._aggregates import ClaimShelf
from trustmesh.reading import parse_reading, sign_reading
from trustmesh.sim.attack import MIN_STAKE, REWARD_BPS, ChainSetup
from trustmesh.sim.lognode import SimLog
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

TS = 1_700_000_000_000
DEADLINE_S = 120


def _publish(http: httpx.Client, shelf: str, data: Claim) -> str:
    answer = http.post(f"{shelf}/v1/aggregates", content=encode(data),
                       headers={"content-type": "application/cbor"})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return shelf + str(answer.json()["path"])


def _log(stack: ExitStack, operator: ChainClient, owner: ChainClient, deployment: Any
         ) -> tuple[SimLog, list[str], list[LoggedReading]]:  # fmt: skip
    """A simulated node's log of 12 integer temperatures by 4 devices, anchored."""
    origin = f"farms.example/{os.urandom(4).hex()}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    log = SimLog(signer, LogAnchor(operator, deployment), epoch=3600, checkpoint_interval=0.1)
    Registry(operator, deployment).register_log(signer, log.url, MIN_STAKE)
    log.start()
    stack.callback(log.stop)
    devices = [SoftwareSigner.generate() for _ in range(4)]
    Registry(owner, deployment).register_devices(
        [did_from_key(d.public_key) for d in devices], MIN_STAKE
    )
    for seq in range(1, 4):
        for k, device in enumerate(devices):
            log.append(sign_reading(device, seq=seq, ts=TS + seq, sensor="temperature",
                                    value=20 + 4 * seq + k))  # fmt: skip
    log.sign()
    log.anchor_now()
    assert log.anchored == len(log.main.entries) == 12
    logged = [LoggedReading(origin_id(origin), i, parse_reading(entry))
              for i, entry in enumerate(log.main.entries)]  # fmt: skip
    return log, [did_from_key(d.public_key) for d in devices], logged


def _foreign(logged: list[LoggedReading], outsider: str, model: Model) -> Leaf:
    """The leaf of a reading by a device the query does not name."""
    found = next(x for x in logged if x.reading.did == outsider)
    value = found.reading.value
    assert isinstance(value, int)
    return Leaf(found.origin, found.index, leaf_hash(found.reading.entry),
                hashlib.sha256(found.reading.did.encode()).digest(), found.reading.seq,
                found.reading.ts, value, model.apply(value))  # fmt: skip


def _judge_all(watcher: Watcher, claims: list[bytes]) -> None:
    assert watcher.claims is not None
    deadline = time.monotonic() + DEADLINE_S
    watcher.tick()  # each tick reads new claims, polls the log and judges what it can
    while not set(claims) <= set(watcher.claims.verdicts) and time.monotonic() < deadline:
        watcher.tick()
    assert set(claims) <= set(watcher.claims.verdicts), "the watcher judged not all claims"


def test_the_watcher_proves_every_lie_and_leaves_the_honest_claim(
    chain: ChainSetup, tmp_path: Path
) -> None:
    operator, owner, watching = (ChainClient(chain.w3, a) for a in chain.accounts[:3])
    deployment = deploy_suite(operator, min_stake=MIN_STAKE, unbonding_delay=3600,
                              reward_bps=REWARD_BPS)  # fmt: skip
    with ExitStack() as stack:
        log, dids, logged = _log(stack, operator, owner, deployment)
        query = Query(frozenset(dids[:3]), frozenset([log.signer.name]), "temperature", TS,
                      TS + 10, Model.threshold(30), Reduction.SUM)  # fmt: skip
        honest = build(query, {origin_id(log.signer.name): 12}, logged)
        other = replace(query, reduction=Reduction.MAX)  # a claim whose data is nowhere
        unpublished = build(other, {origin_id(log.signer.name): 12}, logged)

        shelf = ThreadedServer(Starlette(routes=ClaimShelf(tmp_path / "claims", 30).routes(),
                                         exception_handlers={Problem: on_problem}))  # fmt: skip
        shelf.start()
        stack.callback(shelf.stop)
        http = stack.enter_context(httpx.Client(timeout=30))
        claimer = AggregatesContract(owner, deployment.contracts["Aggregates"])

        def post(data: Claim, result: int, count: int, uri: str | None = None) -> bytes:
            where = uri or _publish(http, shelf.url, data)
            return claimer.post(data.to_abi(), result, count, where)[0]

        made = lies(honest, _foreign(logged, dids[3], query.model))
        posted = {kind: post(*made[kind]) for kind in KINDS}
        posted["no data"] = post(unpublished, unpublished.result, unpublished.count,
                                 f"{shelf.url}/v1/aggregates/{'0' * 64}")  # fmt: skip
        events: list[dict[str, Any]] = []
        watcher = Watcher([log.url], http, chain=ChainView(watching, deployment),
                          report=events.append)  # fmt: skip
        stack.callback(watcher.close)
        _judge_all(watcher, list(posted.values()))
        assert watcher.claims is not None
        verdicts = {kind: watcher.claims.verdicts[claim_id] for kind, claim_id in posted.items()}
        assert verdicts["no data"].status == "unverifiable"
        for kind, expected in KINDS.items():
            challenge = verdicts[kind].challenge
            assert challenge is not None and challenge.kind == expected, (kind, verdicts[kind])
            assert claimer.state(posted[kind]).state == "refuted", kind
        assert sorted(watcher.claims.proven) == sorted(posted[kind] for kind in KINDS)
        proofs = [e for e in events if e["event"] == "aggregate-proof"]
        assert len(proofs) == len(KINDS) and all(p["accepted"] for p in proofs)

        # The wrong result held the honest claim's id; refuted, it is free to post.
        honest_id = post(honest, honest.result, honest.count)
        _judge_all(watcher, [honest_id])
        verdict = watcher.claims.verdicts[honest_id]
        assert verdict.status == "true", verdict.to_json()
        assert claimer.state(honest_id).state == "pending"
        assert len([e for e in events if e["event"] == "aggregate-proof"]) == len(KINDS)
        assert not [e for e in events if e["event"] == "alert"], events
