"""Every epoch: sign a checkpoint of the log, and anchor it on-chain.

Anchoring retries with exponential backoff (tenacity) while the chain is
unreachable; ingestion goes on meanwhile, and the next epoch anchors
everything since the last anchor. A log whose root at the anchored size is
not the anchored root is never anchored over.
"""

from __future__ import annotations

import logging
import threading
import time

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from trustmesh.chain.anchoring import InconsistentWithAnchor, anchor_log
from trustmesh.chain.suite import LogAnchor
from trustmesh.errors import ChainError, StoreError
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note import NoteSigner
from trustmesh.log.store import LogStore
from trustmesh.node._metrics import Metrics
from trustmesh.node._state import NodeState

log = logging.getLogger("trustmesh.node.anchor")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ChainError) and not isinstance(exc, InconsistentWithAnchor)


class Anchorer:
    def __init__(
        self,
        *,
        store: LogStore,
        signer: NoteSigner,
        anchor: LogAnchor,
        state: NodeState,
        metrics: Metrics,
        epoch_seconds: float,
    ) -> None:
        self.store = store
        self.signer = signer
        self.anchor = anchor
        self.state = state
        self.metrics = metrics
        self.epoch = epoch_seconds
        self.checkpoint = state.get("checkpoint") or self._sign(store.size)
        self.anchored: tuple[int, bytes] = (0, b"")
        self.chain_lead_ms = 0  # how far block time runs ahead of the wall clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchorer", daemon=True)

    def start(self) -> None:
        self._measure_chain_lead()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.epoch + 5)

    def _run(self) -> None:
        # A fixed cadence: a slow tick (chain retries) does not push the next one back.
        started = time.monotonic()
        while not self._stop.wait(max(0.0, started + self.epoch - time.monotonic())):
            started = time.monotonic()
            self.tick()

    def _measure_chain_lead(self) -> None:
        """Block time runs ahead of the wall clock while blocks come faster than one
        a second (a block's time is at least its parent's plus one): receipts'
        deadlines, judged on-chain by block time, must allow for it."""
        try:
            with self.anchor.client.errors("reading the latest block"):
                latest = int(self.anchor.client.w3.eth.get_block("latest")["timestamp"])
        except ChainError:
            return
        self.chain_lead_ms = max(0, latest * 1000 - time.time_ns() // 1_000_000)

    def _sign(self, size: int) -> str:
        note = sign_checkpoint(
            Checkpoint(self.signer.name, size, self.store.root(size)), self.signer
        )
        self.state.put("checkpoint", note)
        return note

    def tick(self) -> None:
        """Sign a checkpoint of the current log and anchor that same size.

        The size is read once: the log grows meanwhile, and an anchor past the
        served checkpoint would be a root nobody can check against a note.
        """
        self._measure_chain_lead()
        try:
            size = self.store.size
            self.checkpoint = self._sign(size)
        except StoreError as exc:
            log.error("cannot sign a checkpoint: %s", exc)
            return
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=wait_exponential(multiplier=0.25, max=max(1.0, self.epoch / 4)),
            stop=stop_after_delay(self.epoch),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    result = anchor_log(self.anchor, self.store, self.signer.name, size)
        except InconsistentWithAnchor as exc:
            self.metrics.anchor_failures.inc()
            log.critical("refusing to anchor: %s", exc)
            return
        except ChainError as exc:
            self.metrics.anchor_failures.inc()
            log.warning("anchoring failed this epoch (will retry): %s", exc)
            return
        self.anchored = (result.size, result.root)
        self.metrics.anchored_size.set(result.size)
        self.metrics.anchor_lag.set(self.store.size - result.size)
        if result.transaction:
            log.info("anchored %s at size %d (%d gas)", result.origin, result.size, result.gas_used)
