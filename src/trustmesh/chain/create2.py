"""Deterministic deployment: the standard CREATE2 deployer, and addresses that
follow from a contract's code alone.

The deployer is Arachnid's deterministic-deployment-proxy, at the same address
on anvil and on most public chains (and in the embedded chain's genesis): a
transaction to it whose data is ``salt || init code`` creates the contract at
``keccak256(0xff || deployer || salt || keccak256(init code))[12:]``, whoever
sends it. That is how the EntryPoint lands at its official address, and how
trustmesh's account factory lands where every device can compute its wallet
address offline.
"""

from __future__ import annotations

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from trustmesh.chain.client import ChainClient
from trustmesh.errors import ChainError

__all__ = ["DEPLOYER", "DEPLOYER_CODE", "create2_address", "deploy_deterministic"]

DEPLOYER = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
DEPLOYER_CODE = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe0"
    "3601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3"
)


def create2_address(deployer: str, salt: bytes, init_code: bytes) -> ChecksumAddress:
    """Where ``deployer`` creates ``init_code`` with ``salt`` (EIP-1014)."""
    if len(salt) != 32:
        raise ValueError(f"a CREATE2 salt is 32 bytes, not {len(salt)}")
    digest = keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak(init_code))
    return to_checksum_address(digest[12:])


def deploy_deterministic(
    client: ChainClient, init_code: bytes, salt: bytes = bytes(32)
) -> ChecksumAddress:
    """The contract ``init_code`` at its CREATE2 address through the deployer,
    deployed unless it is there already; returns the address."""
    address = create2_address(DEPLOYER, salt, init_code)
    with client.errors("reading code"):
        if client.w3.eth.get_code(address):
            return address
        if not client.w3.eth.get_code(to_checksum_address(DEPLOYER)):
            raise ChainError(
                f"this chain has no CREATE2 deployer at {DEPLOYER}: deploy it first "
                "(anvil and embedded chains created by this version have it)"
            )
    client.send_raw(DEPLOYER, salt + init_code, "deploying through CREATE2")
    with client.errors("reading code"):
        if not client.w3.eth.get_code(address):
            raise ChainError(f"the CREATE2 deployer did not create {address}")
    return address
