"""The deployed contract suite and typed access to it.

>>> # deployment = deploy_suite(client); registry = Registry(client, deployment)
>>> device_id("did:key:z6Mk…").hex()[:8]
'5b1a7a3b'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from web3 import Web3
from web3.types import TxReceipt

from trustmesh._durable import replace_atomically
from trustmesh.chain.aggregates import deploy_aggregates
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.defaults import (
    DEFAULT_MAX_MERGE_DELAY,
    DEFAULT_MIN_STAKE,
    DEFAULT_REWARD_BPS,
    DEFAULT_UNBONDING_DELAY,
)
from trustmesh.chain.reputation import deploy_reputation
from trustmesh.errors import ChainError
from trustmesh.identity import Alg, PublicKey, did_from_key, key_from_did
from trustmesh.log.note_p256 import LogSigner

ZERO_ADDRESS = "0x" + "00" * 20  # the native currency, where a token could be named

STATUS = {0: "unknown", 1: "active", 2: "revoked", 3: "withdrawn"}


def device_id(did: str) -> bytes:
    """The Registry's key for a device: SHA-256 of its DID."""
    return hashlib.sha256(did.encode()).digest()


def origin_id(origin: str) -> bytes:
    """The Registry's and LogAnchor's key for a log: SHA-256 of its origin."""
    return hashlib.sha256(origin.encode()).digest()


def proof_key_message(origin: str, owner: str, chain_id: int) -> bytes:
    """What a node's P-256 key signs to register: it holds that key (Registry.vy)."""
    return (
        b"trustmesh.dev/proof-key/v1"
        + origin_id(origin)
        + bytes.fromhex(owner.removeprefix("0x"))
        + chain_id.to_bytes(32, "big")
    )


def onchain_key(key: PublicKey) -> bytes:
    """A public key as the Registry stores it: x ‖ y for P-256, 32 bytes for Ed25519."""
    if key.alg is Alg.EDDSA:
        return key.raw
    numbers = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key.raw).public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def key_from_chain(alg: int, raw: bytes) -> PublicKey:
    """The inverse of :func:`onchain_key`: a Registry key record as a PublicKey."""
    if Alg(alg) is Alg.EDDSA:
        return PublicKey(Alg.EDDSA, raw)
    x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return PublicKey.from_cryptography(
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    )


@dataclass(frozen=True)
class Deployment:
    """Where the suite lives on one chain."""

    chain_id: int
    contracts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "contracts": dict(self.contracts)}

    def save(self, data_dir: Path) -> None:
        path = data_dir / "deployments" / f"{self.chain_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, (json.dumps(self.to_json(), indent=2) + "\n").encode(), 0o644)

    @classmethod
    def load(cls, data_dir: Path, chain_id: int) -> Deployment | None:
        path = data_dir / "deployments" / f"{chain_id}.json"
        try:
            document = json.loads(path.read_text())
            return cls(int(document["chain_id"]), dict(document["contracts"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ChainError(f"{path} is damaged: {exc}") from None


def deploy_suite(
    client: ChainClient,
    *,
    min_stake: int = DEFAULT_MIN_STAKE,
    unbonding_delay: int = DEFAULT_UNBONDING_DELAY,
    reward_bps: int = DEFAULT_REWARD_BPS,
    max_merge_delay: int = DEFAULT_MAX_MERGE_DELAY,
    with_disputes: bool = True,
) -> Deployment:
    """Deploy the Registry, the LogAnchor and the Disputes contract, wired together,
    the Aggregates contract where claims over readings are posted and proven wrong
    (with its model evaluator), a Reputation contract (default parameters;
    attesters stake ``min_stake``), and the Channels contract devices' readings
    are sold through.

    ``max_merge_delay``: seconds a node has to anchor a checkpoint it signed once
    someone notarized it. ``with_disputes=False`` leaves the Registry's slashing
    hooks unassigned (tests of the Registry alone name their own caller).
    """
    registry = client.deploy("Registry", min_stake, unbonding_delay, reward_bps)
    contracts = {"Registry": registry, "LogAnchor": client.deploy("LogAnchor", registry)}
    if with_disputes:
        contracts["Disputes"] = client.deploy(
            "Disputes", registry, contracts["LogAnchor"], max_merge_delay
        )
        wiring = client.contract(load_contract("Registry"), registry).functions.set_disputes
        client.transact(wiring(contracts["Disputes"]))
        contracts |= deploy_aggregates(client, contracts["LogAnchor"], contracts["Disputes"])
    contracts["Reputation"] = deploy_reputation(client, min_stake=min_stake, reward_bps=reward_bps)
    contracts["Channels"] = client.deploy("Channels", registry)
    return Deployment(client.chain_id, contracts)


class _Wrapper:
    name = ""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        try:
            address = deployment.contracts[self.name]
        except KeyError:
            raise ChainError(
                f"no {self.name} in the deployment on chain {deployment.chain_id}"
            ) from None
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.contract = client.contract(load_contract(self.name), address)


MAX_MESH = 1024  # Registry.vy's limit on a node's multiaddrs (characters)


class Registry(_Wrapper):
    """Typed access to the Registry contract."""

    name = "Registry"

    def register_device(self, did: str, stake: int) -> TxReceipt:
        key = key_from_did(did)
        fn = self.contract.functions.register_device(
            device_id(did), key.alg.value, onchain_key(key)
        )
        return self.client.transact(fn, stake)

    def register_devices(self, dids: list[str], stake_each: int) -> TxReceipt:
        keys = [key_from_did(did) for did in dids]
        fn = self.contract.functions.register_devices(
            [device_id(did) for did in dids],
            [k.alg.value for k in keys],
            [onchain_key(k) for k in keys],
        )
        return self.client.transact(fn, stake_each * len(dids))

    def rotate_key(self, did: str, new_key: PublicKey, from_seq: int) -> TxReceipt:
        fn = self.contract.functions.rotate_key(
            device_id(did), new_key.alg.value, onchain_key(new_key), from_seq
        )
        return self.client.transact(fn)

    def revoke(self, did: str) -> TxReceipt:
        return self.client.transact(self.contract.functions.revoke(device_id(did)))

    def withdraw(self, id_: bytes) -> TxReceipt:
        return self.client.transact(self.contract.functions.withdraw(id_))

    def set_price(
        self, did: str, price: int, node_bps: int = 0, currency: str = ZERO_ADDRESS
    ) -> TxReceipt:
        """The owner's terms: the price per reading in ``currency`` (the native
        currency, or an ERC-20), and the serving node's share (bps)."""
        fn = self.contract.functions.set_price(
            device_id(did), price, node_bps, Web3.to_checksum_address(currency)
        )
        return self.client.transact(fn)

    def register_node(
        self,
        origin: str,
        checkpoint_key: bytes,
        url: str,
        stake: int,
        proof_key: bytes,
        proof_signature: bytes,
    ) -> TxReceipt:
        """Register a log's node; ``proof_signature`` signs :func:`proof_key_message`."""
        fn = self.contract.functions.register_node(
            origin, checkpoint_key, url, proof_key, proof_signature
        )
        return self.client.transact(fn, stake)

    def retire_node(self, origin: str) -> TxReceipt:
        return self.client.transact(self.contract.functions.retire_node(origin_id(origin)))

    def set_mesh_addrs(self, origin: str, addrs: list[str]) -> TxReceipt:
        """Publish where the node of ``origin`` (this account's) listens on the mesh."""
        text = " ".join(addrs)
        if any(not a or any(c.isspace() for c in a) for a in addrs) or len(text) > MAX_MESH:
            raise ValueError(f"multiaddrs without spaces, {MAX_MESH} characters in all")
        fn = self.contract.functions.set_mesh_addrs(origin_id(origin), text)
        return self.client.transact(fn)

    def mesh_addrs(self, origin: str) -> list[str]:
        """The multiaddrs the node of ``origin`` published (none: [])."""
        return str(self.client.call(self.contract.functions.mesh_addrs(origin_id(origin)))).split()

    def mesh_bootstrap(self, to_block: int | None = None) -> dict[str, list[str]]:
        """Every active node's published multiaddrs, by origin: where to join the mesh."""
        last = self.current_block() if to_block is None else to_block
        found = {}
        for origin in dict.fromkeys(self.node_origins(0, last)):
            if self.node(origin)["status"] == "active" and (addrs := self.mesh_addrs(origin)):
                found[origin] = addrs
        return found

    def device(self, did: str) -> dict[str, Any]:
        owner, stake, status, keys, unbond_at, price, node_bps, currency = self.client.call(
            self.contract.functions.devices(device_id(did))
        )
        return {
            "did": did,
            "owner": owner,
            "stake": stake,
            "status": STATUS.get(status, str(status)),
            "keys": keys,
            "unbond_at": unbond_at,
            "price": price,
            "node_bps": node_bps,
            "currency": currency,
        }

    def register_log(self, signer: LogSigner, url: str, stake: int) -> TxReceipt:
        """Register the node of ``signer``'s log, from this client's account."""
        message = proof_key_message(signer.name, self.client.address, self.client.chain_id)
        return self.register_node(
            signer.name,
            signer.verifier.public_key,
            url,
            stake,
            signer.p256.verifier.public_key,
            signer.p256.sign_raw(message),
        )

    def node(self, origin: str) -> dict[str, Any]:
        owner, stake, status, checkpoint_key, unbond_at, url, proof_key = self.client.call(
            self.contract.functions.nodes(origin_id(origin))
        )
        return {
            "origin": origin,
            "owner": owner,
            "stake": stake,
            "status": STATUS.get(status, str(status)),
            "checkpoint_key": bytes(checkpoint_key).hex(),
            "proof_key": bytes(proof_key).hex(),
            "unbond_at": unbond_at,
            "url": url,
        }

    def key_at(self, did: str, seq: int) -> tuple[int, bytes, int, int]:
        alg, key, from_seq, since = self.client.call(
            self.contract.functions.device_key_at(device_id(did), seq)
        )
        return alg, bytes(key), from_seq, since

    def key_record(self, did: str, index: int) -> tuple[int, bytes, int, int]:
        """Entry ``index`` of the device's key history: (alg, key, from_seq, since)."""
        alg, key, from_seq, since = self.client.call(
            self.contract.functions.device_keys(device_id(did), index)
        )
        return alg, bytes(key), from_seq, since

    def device_events(self, from_block: int, to_block: int) -> list[tuple[int, bytes, str]]:
        """(block, device id, event name) of each registration, rotation and revocation
        in a block range."""
        found: list[tuple[int, bytes, str]] = []
        with self.client.errors("reading registry events"):
            for event in ("DeviceRegistered", "KeyRotated", "DeviceRevoked"):
                logs = getattr(self.contract.events, event)().get_logs(
                    from_block=from_block, to_block=to_block
                )
                found.extend(
                    (log["blockNumber"], bytes(log["args"]["device_id"]), event) for log in logs
                )
        return sorted(found)

    def devices_of(self, owner: str, to_block: int | str = "latest") -> list[str]:
        """The DIDs of the devices ``owner`` registered (whatever their status now),
        from their registrations' keys."""
        with self.client.errors("reading device registrations"):
            logs = self.contract.events.DeviceRegistered().get_logs(
                from_block=0,
                to_block=to_block,
                argument_filters={"owner": Web3.to_checksum_address(owner)},
            )
        return [
            did_from_key(key_from_chain(int(log["args"]["alg"]), bytes(log["args"]["key"])))
            for log in logs
        ]

    def node_origins(self, from_block: int, to_block: int) -> list[str]:
        """The origin of each node registered in a block range, in order."""
        with self.client.errors("reading node registrations"):
            logs = self.contract.events.NodeRegistered().get_logs(
                from_block=from_block, to_block=to_block
            )
        return [str(log["args"]["origin"]) for log in logs]

    def current_block(self) -> int:
        with self.client.errors("reading the block number"):
            return int(self.client.w3.eth.block_number)

    def min_stake(self) -> int:
        return int(self.client.call(self.contract.functions.min_stake()))


class LogAnchor(_Wrapper):
    """Typed access to the LogAnchor contract."""

    name = "LogAnchor"

    def anchor(self, origin: str, size: int, root: bytes, proof: list[bytes]) -> TxReceipt:
        return self.client.transact(self.contract.functions.anchor(origin, size, root, proof))

    def latest(self, origin: str) -> tuple[int, bytes, int, int]:
        """(size, root, block, timestamp) of the last anchored checkpoint."""
        size, root, block, timestamp = self.client.call(
            self.contract.functions.latest(origin_id(origin))
        )
        return size, bytes(root), block, timestamp

    def history(self, origin: str, from_block: int, to_block: int) -> list[tuple[int, int]]:
        """(timestamp, size) of each anchor of ``origin`` in a block range."""
        with self.client.errors("reading anchor events"):
            logs = self.contract.events.Anchored().get_logs(
                from_block=from_block,
                to_block=to_block,
                argument_filters={"origin_id": origin_id(origin)},
            )
        return [(int(log["args"]["timestamp"]), int(log["args"]["size"])) for log in logs]

    def previous(self, origin: str) -> int:
        """The size anchored before the latest anchor (0 if none)."""
        return int(self.client.call(self.contract.functions.previous(origin_id(origin))))

    def verify_consistency(
        self, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
    ) -> bool:
        fn = self.contract.functions.verify_consistency(
            old_size, new_size, old_root, new_root, proof
        )
        return bool(self.client.call(fn))


@dataclass(frozen=True)
class SignedTree:
    """A tree a node vouched for: a checkpoint's size and root with the r || s of
    its P-256 signature, or (``signature`` empty) a tree it anchored."""

    size: int
    root: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class Divergence:
    """One index where two trees hold different leaves, with both inclusion proofs."""

    index: int
    leaf_a: bytes
    proof_a: list[bytes]
    leaf_b: bytes
    proof_b: list[bytes]


class Disputes(_Wrapper):
    """Typed access to the Disputes contract."""

    name = "Disputes"

    def proven(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """Every fraud proof accepted in a block range: kind, block, slashed, reporter."""
        kinds = {
            "EquivocationProven": "equivocation",
            "InvalidEntryProven": "invalid-entry",
            "SplitViewProven": "split-view",
            "LateProven": "late",
        }
        found = []
        with self.client.errors("reading dispute events"):
            for event, kind in kinds.items():
                for log in getattr(self.contract.events, event)().get_logs(
                    from_block=from_block, to_block=to_block
                ):
                    found.append(
                        {
                            "kind": kind,
                            "block": int(log["blockNumber"]),
                            "slashed": int(log["args"]["slashed"]),
                            "reporter": str(log["args"]["reporter"]),
                        }
                    )
        return sorted(found, key=lambda item: item["block"])

    def prove_equivocation(self, first: bytes, second: bytes) -> TxReceipt:
        """Submit two readings by one device with one seq and different payloads."""
        return self.client.transact(self.contract.functions.prove_equivocation(first, second))

    def prove_invalid_entry(
        self, origin: str, size: int, index: int, entry: bytes, proof: list[bytes]
    ) -> TxReceipt:
        """Submit an entry a node logged and anchored but should have refused."""
        fn = self.contract.functions.prove_invalid_entry(origin, size, index, entry, proof)
        return self.client.transact(fn)

    def prove_split_view(
        self, origin: str, a: SignedTree, b: SignedTree, divergence: Divergence | None = None
    ) -> TxReceipt:
        """Submit two views of a log its node vouched for that cannot both be true
        (``divergence`` is needed when their sizes differ)."""
        d = divergence or Divergence(0, bytes(32), [], bytes(32), [])
        fn = self.contract.functions.prove_split_view(
            origin, a.size, a.root, a.signature, b.size, b.root, b.signature,
            d.index, d.leaf_a, d.proof_a, d.leaf_b, d.proof_b,
        )  # fmt: skip
        return self.client.transact(fn)

    def prove_inconsistent(
        self, origin: str, a: SignedTree, b: SignedTree, proof: list[bytes]
    ) -> TxReceipt:
        """Submit a signed tree ``a`` that a larger tree ``b`` the node vouched for
        does not extend; ``proof`` as :func:`prefix_proof` makes it from tree b."""
        fn = self.contract.functions.prove_inconsistent(
            origin, a.size, a.root, a.signature, b.size, b.root, b.signature, proof
        )
        return self.client.transact(fn)

    def notarize(self, origin: str, checkpoint: SignedTree) -> TxReceipt:
        """Record on-chain, at this block's time, a checkpoint the node has not anchored."""
        fn = self.contract.functions.notarize(
            origin, checkpoint.size, checkpoint.root, checkpoint.signature
        )
        return self.client.transact(fn)

    def prove_late(self, origin: str, size: int) -> TxReceipt:
        """Submit a notarized size the node did not anchor within the maximum merge delay."""
        return self.client.transact(self.contract.functions.prove_late(origin, size))

    def notarized(self, origin: str, size: int) -> int:
        """When (block time, s) a checkpoint of ``size`` was notarized; 0 if not."""
        return int(self.client.call(self.contract.functions.notarized(origin_id(origin), size)))

    def max_merge_delay(self) -> int:
        return int(self.client.call(self.contract.functions.max_merge_delay()))

    def verify_reading(
        self, origin: str, size: int, index: int, entry: bytes, proof: list[bytes]
    ) -> dict[str, Any]:
        """The on-chain view: the reading's device id, seq, ts, sensor and integer value."""
        device, seq, ts, sensor, value = self.client.call(
            self.contract.functions.verify_reading(origin, size, index, entry, proof)
        )
        return {"device_id": bytes(device), "seq": seq, "ts": ts, "sensor": sensor, "value": value}
