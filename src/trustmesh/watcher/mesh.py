"""A watcher's mesh peer (libp2p: the optional 'mesh' extra, imported by who joins).

Readings on the mesh are checked against the Registry's keys (their did:keys
without a chain); checkpoints against each log's key in the Registry, else the key
its node names. The peer joins through the addresses given and, when asked, the
peers the Registry lists (each node publishes where its peer listens).
"""

from __future__ import annotations

from typing import Any

import httpx

from trustmesh.errors import ChainError, InvalidMeshMessage
from trustmesh.identity import PublicKey
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.validate import Keys, did_key
from trustmesh.watcher.onchain import ChainView

__all__ = ["watcher_peer"]


def watcher_peer(
    http: httpx.Client,
    nodes: list[str],
    chain: ChainView | None,
    addresses: list[str],
    *,
    registry: bool = False,
) -> MeshPeer:
    """The peer, started and dialled: every one of ``addresses`` must be reached
    (InvalidMeshMessage names the first that is not); of the Registry's, any."""
    named: dict[str, LineVerifier] = {}
    for url in nodes:
        document: dict[str, Any] = http.get(url.rstrip("/") + "/v1/log").json()
        named[str(document["origin"])] = NoteVerifier.from_vkey(str(document["verifier_key"]))

    def device(did: str, seq: int) -> PublicKey | None:
        return chain.key_for(did, seq) if chain is not None else did_key(did, seq)

    def log(origin: str) -> LineVerifier | None:
        if chain is not None and origin not in named:
            record = chain.registry.node(origin)
            if record["status"] != "unknown":
                named[origin] = NoteVerifier(origin, bytes.fromhex(record["checkpoint_key"]))
        return named.get(origin)

    peer = MeshPeer(Keys(device, log)).start()
    try:
        for address in addresses:
            peer.connect(address)
        if registry and chain is not None:
            try:
                listed = chain.registry.mesh_bootstrap()
            except ChainError as exc:
                raise InvalidMeshMessage(f"the Registry could not be read: {exc}") from None
            if not peer.join([address for addrs in listed.values() for address in addrs]):
                raise InvalidMeshMessage(f"no peer the Registry lists could be reached: {listed}")
    except InvalidMeshMessage:
        peer.close()
        raise
    return peer
