"""The simulated fleet's mesh (``trustmesh up --mesh``): a neighbour's peer that
relays, dialled to the nodes' peers, and one peer per partitioned device that
dials the relay only, so that these devices reach their node through the mesh
alone (libp2p: the optional 'mesh' extra, imported by who runs the mesh)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from trustmesh.device import MeshRoute
from trustmesh.errors import Error
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.relay import Relay
from trustmesh.mesh.topics import READINGS, WITNESS
from trustmesh.mesh.validate import Keys, did_key

__all__ = ["FleetMesh"]

FORM_SECONDS = 30.0


class FleetMesh:
    def __init__(self, nodes: list[str], http: httpx.Client) -> None:
        """Log keys and peers of ``nodes`` are read now, before any partition."""
        self._by_url: dict[str, NoteVerifier] = {}
        addresses: list[str] = []
        for url in nodes:
            document: dict[str, Any] = http.get(f"{url}/v1/log").json()
            self._by_url[url] = NoteVerifier.from_vkey(str(document["verifier_key"]))
            addresses += [str(address) for address in document.get("mesh", [])]
        by_origin = {v.name: v for v in self._by_url.values()}

        def log(origin: str) -> LineVerifier | None:
            return by_origin.get(origin)

        self.keys = Keys(did_key, log)
        self.relay = MeshPeer(self.keys).start()
        self.peers = [self.relay]
        self.relay.subscribe(WITNESS, None)  # (challenges and answers, passed on)
        Relay(self.relay).start()
        if not self.relay.join(addresses):
            self.close()
            raise Error(f"the fleet's relay reached none of the nodes' peers: {addresses}")

    def route(self, node: str) -> MeshRoute:
        """A partitioned device's way to ``node``: its own peer, dialled to the relay."""
        own = MeshPeer(self.keys).start()
        self.peers.append(own)
        own.connect(self.relay.addrs[0])
        deadline = time.monotonic() + FORM_SECONDS
        while own.peers(READINGS) < 1 or self.relay.peers(READINGS) < 2:
            if time.monotonic() > deadline:
                raise Error("the fleet's mesh did not form")
            time.sleep(0.05)  # polling the subscriptions the peers exchange
        return MeshRoute(own, self._by_url[node])

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
