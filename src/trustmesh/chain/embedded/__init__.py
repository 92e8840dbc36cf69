"""The embedded chain: py-evm in this process, persisted under a data directory.

It needs no server. Its state lives in ``<data dir>/chain.db`` (SQLite), one
durable transaction per mined block, so a restart (or a SIGKILL) continues
from the last block with nothing lost. It runs Prague with the P256VERIFY
precompile at 0x100, and has the standard CREATE2 deployer from genesis
(:mod:`trustmesh.chain.create2`). A lock file keeps a second process from opening the same
chain (and forking it); other processes reach it through JSON-RPC
(``trustmesh chain serve``), as they would a real chain.

The development accounts are eth-tester's well-known keys (private keys 1, 2,
…), funded at genesis: for local use only, never on a real chain.

>>> import tempfile, pathlib
>>> chain = EmbeddedChain.open(pathlib.Path(tempfile.mkdtemp()))
>>> chain.w3.eth.block_number >= 0
True
>>> chain.close()
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    generate_genesis_state_for_keys,
    get_default_account_keys,
    get_default_genesis_params,
)
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound
from eth_typing import BlockNumber, Hash32
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from trustmesh._paths import private_dir
from trustmesh.chain.create2 import DEPLOYER, DEPLOYER_CODE
from trustmesh.chain.embedded._db import BufferedSqliteDB
from trustmesh.chain.embedded._vm import TrustmeshVM
from trustmesh.errors import ChainError

__all__ = ["CHAIN_ID", "EmbeddedChain"]

CHAIN_ID = 131277322940537  # eth-tester's, which web3's tester provider reports
DEV_ACCOUNTS = 10


class _Chain(MiningChain):
    chain_id = CHAIN_ID
    vm_configuration = ((BlockNumber(0), TrustmeshVM),)

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        # Keep the gas limit constant, as eth-tester's tester chain does.
        return super().create_header_from_parent(
            parent_header, **{**header_params, "gas_limit": parent_header.gas_limit}
        )

    def get_transaction_builder(self) -> Any:
        return super().get_vm().get_transaction_builder()


class _PersistentBackend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm backend on a persistent database.

    The stock backend always starts a fresh in-memory chain; this one opens the
    chain in ``db`` (creating it at genesis if empty), writes each block to disk
    when it is mined, and finds transactions through py-evm's index rather
    than by scanning blocks.
    """

    def __init__(self, db: BufferedSqliteDB) -> None:  # no super().__init__: it resets
        self._db = db
        self.account_keys = get_default_account_keys(quantity=DEV_ACCOUNTS)
        base = AtomicDB(db)
        try:
            ChainDB(base).get_canonical_head()
        except CanonicalHeadNotFound:
            genesis_state = generate_genesis_state_for_keys(self.account_keys)
            genesis_state[bytes.fromhex(DEPLOYER[2:])] = {
                "balance": 0, "nonce": 0, "code": DEPLOYER_CODE, "storage": {}
            }  # fmt: skip
            self.chain = _Chain.from_genesis(base, get_default_genesis_params(), genesis_state)
            db.flush()
        else:
            self.chain = _Chain(base)

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = b"\0" * 20) -> Any:
        hashes = super().mine_blocks(num_blocks, coinbase)
        self._db.flush()
        return hashes

    def _locate(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        head = self.chain.get_block()  # the pending block
        for index, transaction in enumerate(head.transactions):
            if transaction.hash == transaction_hash:
                return head, transaction, index
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(transaction_hash))
        except EVMTransactionNotFound:
            raise TransactionNotFound(f"no transaction {transaction_hash.hex()}") from None
        block = self.chain.get_canonical_block_by_number(number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, transaction, index, pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        pending = block.number == self.chain.get_block().number
        return serialize_transaction_receipt(
            block,
            block.get_receipts(self.chain.chaindb),
            transaction,
            index,
            pending,
            self.chain.get_vm(),
        )


class _LockedProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe: one request at a time, from any thread."""

    def __init__(self, tester: EthereumTester) -> None:
        super().__init__(tester)
        self._lock = threading.RLock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            return super().make_request(method, params)


def dev_keys() -> list[str]:
    """The development accounts' private keys (eth-tester's well-known keys: local use only)."""
    return [key.to_hex() for key in get_default_account_keys(quantity=DEV_ACCOUNTS)]


class EmbeddedChain:
    """A persistent in-process chain and a web3 connected to it."""

    def __init__(self, data_dir: Path, lock_fd: int, db: BufferedSqliteDB) -> None:
        self.data_dir = data_dir
        self._lock_fd = lock_fd
        self._db = db
        self.backend = _PersistentBackend(db)
        self.tester = EthereumTester(backend=self.backend)
        self.w3 = Web3(_LockedProvider(self.tester))

    @classmethod
    def open(cls, data_dir: Path) -> EmbeddedChain:
        """Open (creating if needed) the chain under ``data_dir``; one process at a time."""
        try:
            private_dir(data_dir)
            lock_fd = os.open(data_dir / "chain.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ChainError(f"cannot open the chain in {data_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise ChainError(
                f"the chain in {data_dir} is open in another process; reach it through "
                "`trustmesh chain serve` and --rpc"
            ) from None
        try:
            return cls(data_dir, lock_fd, BufferedSqliteDB(data_dir / "chain.db"))
        except BaseException:
            os.close(lock_fd)
            raise

    @property
    def dev_account(self) -> LocalAccount:
        """The first funded development account (local use only)."""
        return self.dev_accounts[0]

    @property
    def dev_accounts(self) -> list[LocalAccount]:
        return [Account.from_key(key.to_bytes()) for key in self.backend.account_keys]

    def advance_time(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block (for tests and demos)."""
        latest = self.w3.eth.get_block("latest")["timestamp"]
        self.tester.time_travel(int(latest) + seconds)

    def disk_bytes(self) -> int:
        return self._db.size_bytes()

    def close(self) -> None:
        self._db.close()
        os.close(self._lock_fd)  # releases the lock
