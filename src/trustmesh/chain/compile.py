"""Compile the Vyper contracts from source, caching by source hash.

The sources ship in the package (``trustmesh/chain/contracts/*.vy``); modules
they import (snekmate's) are found on ``sys.path``, as the ``vyper`` command
finds them. The compiled ABI and bytecode are cached under the user's cache
directory (or ``$TRUSTMESH_CACHE_DIR``), keyed by SHA-256 of the compiler's and
snekmate's versions and the source, so an edited contract is always recompiled
and a cache is never the only copy of anything.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import vyper
from vyper.cli.vyper_compile import get_search_paths
from vyper.compiler import compile_code
from vyper.compiler.input_bundle import FilesystemInputBundle

from trustmesh._durable import replace_atomically
from trustmesh.errors import ChainError

CONTRACTS = (
    "Registry", "LogAnchor", "Disputes", "Reputation", "ReputationGate", "Channels",
    "DeviceAccount", "DeviceAccountFactory", "Rewards", "RewardPool", "PaymentToken",
    "AggregateModel", "Aggregates",
)  # fmt: skip


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI and deployment bytecode, and the digest of the
    compiler versions and source it was compiled from ("" if uncached)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_hash: str


def cache_dir() -> Path:
    """Where compiled contracts are cached: ``$TRUSTMESH_CACHE_DIR``, else the
    user's cache directory."""
    return Path(os.environ.get("TRUSTMESH_CACHE_DIR") or platformdirs.user_cache_dir("trustmesh"))


def source(name: str) -> str:
    """The Vyper source of the shipped contract ``name`` (one of CONTRACTS)."""
    if name not in CONTRACTS:
        raise ChainError(f"unknown contract {name!r}")
    return (importlib.resources.files("trustmesh.chain.contracts") / f"{name}.vy").read_text()


def compile_source(name: str, text: str, digest: str = "") -> Artifact:
    """Vyper source ``text`` compiled (uncached), as contract ``name``."""
    try:
        output = compile_code(
            text,
            output_formats=["abi", "bytecode"],
            input_bundle=FilesystemInputBundle(get_search_paths()),
        )
    except vyper.exceptions.VyperException as exc:
        raise ChainError(f"{name}.vy does not compile: {exc}") from None
    return Artifact(name, output["abi"], bytes.fromhex(output["bytecode"][2:]), digest)


def load_contract(name: str) -> Artifact:
    """The compiled contract ``name``, from the cache or freshly compiled."""
    text = source(name)
    compilers = f"vyper {vyper.__version__} snekmate {importlib.metadata.version('snekmate')}"
    digest = hashlib.sha256(f"{compilers}\n{text}".encode()).hexdigest()
    cached = cache_dir() / "contracts" / f"{name}-{digest[:32]}.json"
    try:
        document = json.loads(cached.read_text())
        return Artifact(name, document["abi"], bytes.fromhex(document["bytecode"]), digest)
    except (OSError, ValueError, KeyError):
        pass  # not cached yet, or a damaged cache file: compile
    artifact = compile_source(name, text, digest)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "abi": artifact.abi,
            "bytecode": artifact.bytecode.hex(),
            "source_sha256": digest,
        }
        replace_atomically(cached, json.dumps(document).encode(), mode=0o644)
    except OSError:
        pass  # a read-only cache only costs a recompile next time
    return artifact
