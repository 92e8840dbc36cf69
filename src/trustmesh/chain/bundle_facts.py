"""What the chain says about a proof bundle (the ``chain`` step of
:func:`trustmesh.bundle.verify_bundle`): read-only, from the LogAnchor the
bundle names and the Registry that LogAnchor was deployed with."""

from __future__ import annotations

import functools

from eth_account import Account
from web3 import Web3

from trustmesh.bundle import ChainFacts, ChainLookup
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.suite import Deployment, Registry, key_from_chain, origin_id
from trustmesh.identity import PublicKey


def chain_lookup(w3: Web3, chain_id: int, log_anchor: str, *, cached: bool = False) -> ChainLookup:
    """A lookup for bundles anchored at ``log_anchor`` on chain ``chain_id``
    (ChainError if the chain is another one or unreachable).

    ``cached``: for checking many bundles at once (a purchase of a thousand
    readings), each anchored root, log key and device key history is read once
    for the lookup's life; an anchored root never changes, a key changes only by
    a rotation or a new registration, which a short-lived lookup may miss."""
    client = ChainClient(w3, Account.create(), chain_id=chain_id)  # views only
    anchor = client.contract(load_contract("LogAnchor"), log_anchor)
    registry_address = str(client.call(anchor.functions.registry()))
    registry = Registry(client, Deployment(chain_id, {"Registry": registry_address}))

    def root_at(origin: str, size: int) -> bytes:
        return bytes(client.call(anchor.functions.roots(origin_id(origin), size)))

    def log_key(origin: str) -> bytes | None:
        node = registry.node(origin)
        return bytes.fromhex(node["checkpoint_key"]) if node["status"] != "unknown" else None

    def history(did: str) -> list[tuple[int, int, bytes]]:
        """(from_seq, alg, key) of each of the device's keys, oldest first."""
        device = registry.device(did)
        if device["status"] == "unknown":
            return []
        records = (registry.key_record(did, i) for i in range(int(device["keys"])))
        return [(from_seq, alg, raw) for alg, raw, from_seq, _ in records]

    def device_key(did: str, seq: int) -> PublicKey | None:
        if not cached:
            if registry.device(did)["status"] == "unknown":
                return None
            alg, raw, _, _ = registry.key_at(did, seq)
            return key_from_chain(alg, raw)
        held = [(alg, raw) for from_seq, alg, raw in keys(did) if from_seq <= seq]
        return key_from_chain(*held[-1]) if held else None

    if cached:
        root_at, log_key = functools.cache(root_at), functools.cache(log_key)
    keys = functools.cache(history)

    def lookup(origin: str, did: str, seq: int, size: int) -> ChainFacts:
        root = root_at(origin, size)
        return ChainFacts(root if any(root) else None, device_key(did, seq), log_key(origin))

    return lookup
