"""Device accounts: where a device's ERC-4337 wallet is, and the contracts
behind it.

The implementation (``DeviceAccount.vy``) and the factory
(``DeviceAccountFactory.vy``) are deployed through the CREATE2 deployer with a
zero salt, so their addresses follow from their code (and the EntryPoint's
address) alone; a device's account is then the factory's CREATE2 of a minimal
proxy carrying the device's P-256 key. A device's wallet address is thus a pure
function of its did:key: :func:`account_address` computes it offline, before
anything is deployed, and the factory's ``account_address`` agrees.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives.asymmetric import ec
from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_signature_to_4byte_selector

from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.create2 import DEPLOYER, create2_address, deploy_deterministic
from trustmesh.chain.entrypoint import ENTRY_POINT, deploy_entry_point
from trustmesh.identity import Alg, PublicKey

__all__ = [
    "account_address",
    "account_key",
    "create_account_call",
    "deploy_account_contracts",
    "factory_address",
    "key_coordinates",
]

# The factory's proxy: a creation prefix, EIP-1167 around the implementation, the key.
_CREATION = bytes.fromhex("3d606d80600a3d3981f3363d3d373d3d3d363d73")
_FORWARD = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
_CREATE_ACCOUNT = function_signature_to_4byte_selector("create_account(bytes32,bytes32)")


def key_coordinates(key: PublicKey) -> tuple[bytes, bytes]:
    """A P-256 key's affine x and y, 32 bytes each."""
    if key.alg is not Alg.ES256:
        raise ValueError("device accounts need a P-256 (ES256) key, not an Ed25519 one")
    numbers = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key.raw).public_numbers()
    return numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")


@functools.cache
def _init_codes(entry_point: str) -> tuple[bytes, bytes]:
    """The implementation's and the factory's creation code (with arguments)."""
    implementation = load_contract("DeviceAccount").bytecode + encode(["address"], [entry_point])
    implementation_address = create2_address(DEPLOYER, bytes(32), implementation)
    factory = load_contract("DeviceAccountFactory").bytecode + encode(
        ["address"], [implementation_address]
    )
    return implementation, factory


def implementation_address(entry_point: str = ENTRY_POINT) -> ChecksumAddress:
    return create2_address(DEPLOYER, bytes(32), _init_codes(entry_point)[0])


def factory_address(entry_point: str = ENTRY_POINT) -> ChecksumAddress:
    return create2_address(DEPLOYER, bytes(32), _init_codes(entry_point)[1])


def account_address(key: PublicKey, entry_point: str = ENTRY_POINT) -> ChecksumAddress:
    """The device's account address, deployed or not."""
    x, y = key_coordinates(key)
    implementation = bytes.fromhex(implementation_address(entry_point)[2:])
    proxy = _CREATION + implementation + _FORWARD + x + y
    return create2_address(factory_address(entry_point), bytes(32), proxy)


def account_key(client: ChainClient, address: str) -> bytes:
    """The 64-byte key (x || y) the contract at ``address`` says it holds, as a
    device account answers ``key()``; ChainError if it answers nothing of the kind."""
    account = client.contract(load_contract("DeviceAccount"), address)
    return bytes(client.call(account.functions.key()))


def create_account_call(key: PublicKey) -> bytes:
    """The factory call that deploys the account (a user operation's factoryData)."""
    x, y = key_coordinates(key)
    return _CREATE_ACCOUNT + x + y


def deploy_account_contracts(client: ChainClient) -> ChecksumAddress:
    """The EntryPoint, the account implementation and the factory, each deployed
    at its deterministic address unless there already; returns the factory's."""
    entry_point = deploy_entry_point(client)
    implementation, factory = _init_codes(entry_point)
    deploy_deterministic(client, implementation)
    return deploy_deterministic(client, factory)
