"""Gas of the trustmesh contracts and throughput of the embedded chain.

Gas is deterministic, so it is measured once per operation on the embedded
chain (a fresh one in a temporary directory). Anchors are measured at tree
sizes 2^10, 2^20 and 2^32, each from a previous anchor 10,000 entries (or half
the tree) earlier: trees of 2^32 entries are built as logs of identical
entries, whose subtree hashes take O(log n) to compute; the proof and the
on-chain check are those of any log of that size. Throughput compares the
persisted embedded chain with eth-tester's stock in-memory chain, in the same
run, on the same transactions.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import Wei

from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.merkle import leaf_hash, node_hash
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.tiles import TreeReader

READINGS_PER_ANCHOR = 10_000
ANCHOR_SIZES = {"2^10": 2**10, "2^20": 2**20, "2^32": 2**32}
BATCH = 32
TRANSFERS = 200
GOALS = {"gas_per_reading_max": 10, "anchor_gas_at_2^32_max": 150_000}


class UniformTree(TreeReader):
    """A log of ``size`` identical entries: a complete subtree of height k
    hashes to h_k = node_hash(h_{k-1}, h_{k-1}), whatever its position."""

    def __init__(self, size: int, entry: bytes = b"trustmesh benchmark entry") -> None:
        super().__init__(size, lambda key: None)
        self._levels = [leaf_hash(entry)]
        for _ in range(64):
            self._levels.append(node_hash(self._levels[-1], self._levels[-1]))

    def node(self, level: int, index: int) -> bytes:
        return self._levels[level]


def run(directory: Path | None = None) -> dict[str, Any]:
    """Measure; returns the JSON object that ``trustmesh bench chain --json`` prints."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        chain = EmbeddedChain.open(Path(tmp) / "chain")
        try:
            gas = _gas(ChainClient(chain.w3, chain.dev_account))
            throughput = _throughput(chain)
        finally:
            chain.close()
    anchor_2_20 = gas["anchor"]["2^20"]
    return {
        "benchmark": "chain",
        "gas": gas,
        "readings_per_anchor": READINGS_PER_ANCHOR,
        "gas_per_reading": round(anchor_2_20 / READINGS_PER_ANCHOR, 2),
        **throughput,
        "goals": GOALS,
        "goals_met": {
            "gas_per_reading": anchor_2_20 / READINGS_PER_ANCHOR <= GOALS["gas_per_reading_max"],
            "anchor_gas_at_2^32": gas["anchor"]["2^32"] < GOALS["anchor_gas_at_2^32_max"],
        },
    }


def _new_did() -> str:
    return did_from_key(SoftwareSigner.generate().public_key)


def _gas(client: ChainClient) -> dict[str, Any]:
    deployment = deploy_suite(client)
    registry, anchor = Registry(client, deployment), LogAnchor(client, deployment)
    stake = registry.min_stake()
    did = _new_did()
    gas: dict[str, Any] = {"register": registry.register_device(did, stake)["gasUsed"]}
    batch = registry.register_devices([_new_did() for _ in range(BATCH)], stake)
    gas["batch_register_per_device"] = round(batch["gasUsed"] / BATCH)
    gas["batch_size"] = BATCH
    gas["rotate"] = registry.rotate_key(did, SoftwareSigner.generate().public_key, 1000)["gasUsed"]
    gas["revoke"] = registry.revoke(did)["gasUsed"]
    gas["anchor"] = {}
    for label, size in ANCHOR_SIZES.items():
        origin = f"bench.example/{label}"
        registry.register_log(
            LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1", stake
        )
        previous = size - min(READINGS_PER_ANCHOR, size // 2)
        tree = UniformTree(size)
        anchor.anchor(origin, previous, UniformTree(previous).root(), [])
        receipt = anchor.anchor(origin, size, tree.root(), tree.consistency_proof(previous))
        gas["anchor"][label] = receipt["gasUsed"]
    return gas


def _throughput(chain: EmbeddedChain) -> dict[str, Any]:
    """Plain transfers per second: the persisted chain vs eth-tester in memory."""
    baseline = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    rates = {}
    for name, w3 in (("embedded", chain.w3), ("in_memory_eth_tester", baseline)):
        sender, receiver = list(w3.eth.accounts)[:2]
        start = time.perf_counter()
        for _ in range(TRANSFERS):
            w3.eth.send_transaction({"from": sender, "to": receiver, "value": Wei(1)})
        rates[name] = TRANSFERS / (time.perf_counter() - start)
    return {
        "embedded_tx_per_s": round(rates["embedded"], 1),
        "in_memory_eth_tester_tx_per_s": round(rates["in_memory_eth_tester"], 1),
        "embedded_vs_in_memory": round(rates["embedded"] / rates["in_memory_eth_tester"], 3),
        "embedded_disk_bytes_per_tx": round(chain.disk_bytes() / max(1, chain.w3.eth.block_number)),
    }
