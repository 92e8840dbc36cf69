"""Every epoch: sign a checkpoint of the log, and anchor it on-chain.

Anchoring retries with exponential backoff (tenacity) while the chain is
unreachable; ingestion goes on meanwhile, and the next epoch anchors
everything since the last anchor. A log whose root at the anchored size is
not the anchored root is never anchored over.
"""

from __future__ import annotations

import logging
import threading

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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchorer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.epoch + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.epoch):
            self.tick()

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
