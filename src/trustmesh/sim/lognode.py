"""A simulated node: a log with a node's read API, honest until told to lie.

It keeps entries in memory (the proofs come from the reference RFC 9162
functions), signs a checkpoint of each view every ``checkpoint_interval``
seconds with the same two keys a node has, and anchors its main view every
epoch. It can lie in each way a watcher must catch:

- :meth:`SimLog.append` with an invalid entry (it logs anything it is given);
- :meth:`SimLog.diverge`: with two views (the second served on its own port),
  log different entries at one index in each, both signed with the same
  keys: a split view;
- :meth:`SimLog.false_receipt` for one entry, in a tree it signs but does not
  keep, and :meth:`SimLog.append` of another at that index: a broken receipt;
- :meth:`SimLog.stall`: no more anchors of what it signs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from trustmesh._server import ThreadedServer
from trustmesh.chain.suite import LogAnchor
from trustmesh.errors import ChainError
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.tlog_proof import format_tlog_proof


class _View:
    def __init__(self, entries: list[bytes]) -> None:
        self.entries = list(entries)
        self.leaves = [merkle.leaf_hash(e) for e in entries]
        self.note = ""

    def app(self, log: SimLog) -> Starlette:
        async def info(request: Request) -> Response:
            return JSONResponse(
                {
                    "origin": log.signer.name,
                    "verifier_key": log.signer.verifier.vkey,
                    "proof_key": log.signer.p256.verifier.vkey,
                    "size": len(self.entries),
                    "epoch_seconds": log.epoch,
                }
            )

        async def checkpoint(request: Request) -> Response:
            return PlainTextResponse(self.note)

        async def entry(request: Request) -> Response:
            index = int(request.path_params["index"])
            with log.lock:
                if not 0 <= index < len(self.entries):
                    return JSONResponse({"detail": "no such entry"}, 404)
                return Response(self.entries[index], media_type="application/cose")

        async def inclusion(request: Request) -> Response:
            index, size = int(request.query_params["index"]), int(request.query_params["size"])
            with log.lock:
                leaves = self.leaves[:size]
            if size > len(leaves) or not 0 <= index < size:
                return JSONResponse({"detail": "beyond the log"}, 400)
            hashes = merkle.inclusion_proof(leaves, index)
            return JSONResponse({"index": index, "size": size, "hashes": [h.hex() for h in hashes]})

        async def consistency(request: Request) -> Response:
            old, new = int(request.query_params["from"]), int(request.query_params["to"])
            with log.lock:
                leaves = self.leaves[:new]
            if new > len(leaves) or not 0 <= old <= new:
                return JSONResponse({"detail": "beyond the log"}, 400)
            hashes = merkle.consistency_proof(leaves, old) if 0 < old < new else []
            return JSONResponse({"from": old, "to": new, "hashes": [h.hex() for h in hashes]})

        return Starlette(
            routes=[
                Route("/v1/log", info),
                Route("/v1/checkpoint", checkpoint),
                Route("/v1/entries/{index:int}", entry),
                Route("/v1/proof/inclusion", inclusion),
                Route("/v1/proof/consistency", consistency),
            ]
        )


class SimLog:
    def __init__(
        self,
        signer: LogSigner,
        anchor: LogAnchor,
        *,
        epoch: float,
        checkpoint_interval: float,
        views: int = 1,
    ) -> None:
        self.signer = signer
        self.anchor = anchor
        self.epoch = epoch
        self.checkpoint_interval = checkpoint_interval
        self.lock = threading.Lock()
        self.views = [_View([]) for _ in range(views)]
        self.main = self.views[0]
        self.servers = [ThreadedServer(view.app(self)) for view in self.views]
        self.anchored = 0
        self.signed = 0
        self.stalled = False
        self.missed_at: float | None = None  # when (time.time()) it first skipped an anchor
        self.anchor_errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._every, args=(checkpoint_interval, self.sign), daemon=True
            ),
            threading.Thread(target=self._every, args=(epoch, self.anchor_now), daemon=True),
        ]

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> SimLog:
        self.sign()
        for server in self.servers:
            server.start()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for server in self.servers:
            server.stop()

    def _every(self, seconds: float, action: Any) -> None:
        while not self._stop.wait(seconds):
            action()

    # -- what an honest log does ------------------------------------------------

    @property
    def size(self) -> int:
        """Entries in the main view."""
        with self.lock:
            return len(self.main.entries)

    def append(self, entry: bytes) -> int:
        """Log ``entry`` (in every view); its index."""
        with self.lock:
            for view in self.views:
                view.entries.append(entry)
                view.leaves.append(merkle.leaf_hash(entry))
            return len(self.main.entries) - 1

    def sign(self) -> None:
        with self.lock:
            for view in self.views:
                size = len(view.leaves)
                view.note = sign_checkpoint(
                    Checkpoint(self.signer.name, size, merkle.root(view.leaves)), self.signer
                )
            self.signed = len(self.main.leaves)

    def anchor_now(self) -> None:
        """Anchor the main view at the size last signed, as a node does."""
        if self.stalled:
            if self.missed_at is None:
                self.missed_at = time.time()
            return
        with self.lock:
            leaves = self.main.leaves[: self.signed]
        size = len(leaves)
        if size <= self.anchored:
            return
        proof = merkle.consistency_proof(leaves, self.anchored) if self.anchored else []
        try:
            self.anchor.anchor(self.signer.name, size, merkle.root(leaves), proof)
        except ChainError as exc:
            self.anchor_errors.append(str(exc))
            return
        self.anchored = size

    def receipt(self, index: int) -> str:
        """The receipt of the entry at ``index``: its tlog-proof in the main view, as
        signed now."""
        with self.lock:
            return self._proof(self.main.leaves, index)

    def false_receipt(self, index: int, leaf: bytes) -> str:
        """A receipt putting ``leaf`` at ``index``, in a tree (the main view's first
        ``index`` leaves, then ``leaf``) that the log signs but does not keep."""
        with self.lock:
            return self._proof([*self.main.leaves[:index], leaf], index)

    def _proof(self, leaves: list[bytes], index: int) -> str:
        root = merkle.root(leaves)
        note = sign_checkpoint(Checkpoint(self.signer.name, len(leaves), root), self.signer)
        return format_tlog_proof(index, merkle.inclusion_proof(leaves, index), note)

    # -- lies ---------------------------------------------------------------------

    def diverge(self, entry: bytes, other: bytes) -> int:
        """Log ``entry`` in the main view and ``other`` in the second, at one index."""
        with self.lock:
            index = len(self.main.entries)
            for view, logged in zip(self.views[:2], (entry, other), strict=True):
                view.entries.append(logged)
                view.leaves.append(merkle.leaf_hash(logged))
            return index

    def stall(self) -> None:
        self.stalled = True
