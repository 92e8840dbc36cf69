"""The canonical ERC-4337 EntryPoint v0.8, deployed where every tool expects it.

Its bytecode is the one npm ``@account-abstraction/contracts`` 0.8.0 ships
(``artifacts/EntryPoint.json``), kept here unchanged (``vendor/``) so a chain can
be given an EntryPoint without node or npm; a test holds the copy equal to the
npm package's. Through the standard CREATE2 deployer with the official salt it
lands at the official address, 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108, on
the embedded chain and on anvil alike.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json

from eth_typing import ChecksumAddress

from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import Artifact
from trustmesh.chain.create2 import DEPLOYER, create2_address, deploy_deterministic

__all__ = ["ENTRY_POINT", "ENTRY_POINT_SALT", "deploy_entry_point", "entry_point_artifact"]

ENTRY_POINT = "0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108"
ENTRY_POINT_SALT = bytes.fromhex("0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9")
_VENDORED = "EntryPoint-0.8.0.json"


@functools.cache
def entry_point_artifact() -> Artifact:
    """The EntryPoint v0.8 ABI and creation code."""
    text = (importlib.resources.files("trustmesh.chain.vendor") / _VENDORED).read_text()
    document = json.loads(text)
    bytecode = bytes.fromhex(document["bytecode"].removeprefix("0x"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    artifact = Artifact("EntryPoint", document["abi"], bytecode, digest)
    assert create2_address(DEPLOYER, ENTRY_POINT_SALT, bytecode) == ENTRY_POINT
    return artifact


def deploy_entry_point(client: ChainClient) -> ChecksumAddress:
    """The EntryPoint at its official address, deployed there unless it is."""
    return deploy_deterministic(client, entry_point_artifact().bytecode, ENTRY_POINT_SALT)
