"""Every epoch: anchor the latest checkpoint the node signed, on-chain.

Every checkpoint the node signs (one per committed batch) must be covered by an
anchor within the chain's maximum merge delay once someone notarizes it; an
anchor of the latest covers them all. Anchoring retries with exponential backoff
(tenacity) while the chain is unreachable; ingestion goes on meanwhile, and the
next epoch anchors everything since the last anchor. A log whose root at the
anchored size is not the anchored root is never anchored over.
"""

from __future__ import annotations

import logging
import threading
import time

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from trustmesh.chain.anchoring import InconsistentWithAnchor, anchor_log
from trustmesh.chain.suite import LogAnchor
from trustmesh.errors import ChainError
from trustmesh.log.store import LogStore
from trustmesh.node._latest import LatestCheckpoint
from trustmesh.node._metrics import Metrics

log = logging.getLogger("trustmesh.node.anchor")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ChainError) and not isinstance(exc, InconsistentWithAnchor)


class Anchorer:
    def __init__(
        self,
        *,
        store: LogStore,
        latest: LatestCheckpoint,
        anchor: LogAnchor,
        metrics: Metrics,
        epoch_seconds: float,
    ) -> None:
        self.store = store
        self.latest = latest
        self.origin = latest.origin
        self.anchor = anchor
        self.metrics = metrics
        self.epoch = epoch_seconds
        self.anchored: tuple[int, bytes] = (0, b"")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchorer", daemon=True)

    def start(self) -> None:
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

    def tick(self) -> None:
        """Anchor the latest signed checkpoint's tree (its size read once: the log
        grows meanwhile, and an anchor should be a tree someone holds a note of)."""
        size = self.latest.get().size
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=wait_exponential(multiplier=0.25, max=max(1.0, self.epoch / 4)),
            stop=stop_after_delay(self.epoch),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    result = anchor_log(self.anchor, self.store, self.origin, size)
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
