"""What the chain says about a proof bundle (the ``chain`` step of
:func:`trustmesh.bundle.verify_bundle`): read-only, from the LogAnchor the
bundle names and the Registry that LogAnchor was deployed with."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from trustmesh.bundle import ChainFacts, ChainLookup
from trustmesh.chain._compile import load_contract
from trustmesh.chain.client import ChainClient
from trustmesh.chain.suite import Deployment, Registry, key_from_chain, origin_id


def chain_lookup(w3: Web3, chain_id: int, log_anchor: str) -> ChainLookup:
    """A lookup for bundles anchored at ``log_anchor`` on chain ``chain_id``
    (ChainError if the chain is another one or unreachable)."""
    client = ChainClient(w3, Account.create(), chain_id=chain_id)  # views only
    anchor = client.contract(load_contract("LogAnchor"), log_anchor)
    registry_address = str(client.call(anchor.functions.registry()))
    registry = Registry(client, Deployment(chain_id, {"Registry": registry_address}))

    def lookup(origin: str, did: str, seq: int, size: int) -> ChainFacts:
        root = bytes(client.call(anchor.functions.roots(origin_id(origin), size)))
        device_key = None
        if registry.device(did)["status"] != "unknown":
            alg, raw, _, _ = registry.key_at(did, seq)
            device_key = key_from_chain(alg, raw)
        node = registry.node(origin)
        log_key = bytes.fromhex(node["checkpoint_key"]) if node["status"] != "unknown" else None
        return ChainFacts(root if any(root) else None, device_key, log_key)

    return lookup
