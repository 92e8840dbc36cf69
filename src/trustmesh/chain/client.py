"""One client for every chain: the embedded one, anvil, or any JSON-RPC EVM chain.

:class:`ChainClient` sends transactions from one account: it checks the chain
id, estimates gas (a revert found there is raised with its reason before
anything is sent), keeps nonces right when several threads send at once, and
waits for each receipt with a timeout. Every web3 failure becomes a
:class:`~trustmesh.errors.ChainError`; a revert becomes
:class:`~trustmesh.errors.Reverted` whose message is the contract's reason
(``"registry: stake below minimum"``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
)
from web3.types import TxReceipt

from trustmesh.chain.compile import Artifact, load_contract
from trustmesh.errors import ChainError, Reverted

__all__ = ["ChainClient", "account_from_env_or_file", "rpc_web3"]

KEY_ENV = "TRUSTMESH_CHAIN_KEY"
DEFAULT_TIMEOUT = 120.0
RECEIPT_POLL_SECONDS = 0.5  # never a tight loop: some nodes slow down under polling

T = TypeVar("T")


def rpc_web3(url: str, timeout: float = 30.0) -> Web3:
    """A web3 for a JSON-RPC endpoint (http:// or https://)."""
    if not url.startswith(("http://", "https://")):
        raise ChainError(f"--rpc wants an http(s) URL, not {url!r}")
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))


def account_from_env_or_file(key_file: Path | None, password: str | None) -> LocalAccount:
    """The sender: an Ethereum JSON keystore file, or a hex key in ``$TRUSTMESH_CHAIN_KEY``."""
    if key_file is not None:
        try:
            document = key_file.read_text()
        except OSError as exc:
            raise ChainError(f"cannot read {key_file}: {exc.strerror}") from None
        if password is None:
            raise ChainError(f"{key_file} needs a password (TRUSTMESH_PASSWORD)")
        try:
            account: LocalAccount = Account.from_key(Account.decrypt(document, password))
        except (ValueError, TypeError) as exc:
            raise ChainError(f"cannot open {key_file}: {exc}") from None
        return account
    key = os.environ.get(KEY_ENV)
    if not key:
        raise ChainError(f"no sender key: give --key-file or set ${KEY_ENV}")
    try:
        from_env: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError):
        raise ChainError(f"${KEY_ENV} is not a valid private key") from None
    return from_env


class ChainClient:
    """Send transactions and calls to one chain from one account."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        chain_id: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        advance_time: Callable[[int], None] | None = None,
        gas_limit: int | None = None,
    ) -> None:
        """``gas_limit``: give every transaction this limit instead of estimating it
        (for the embedded chain, where an estimate executes the transaction some
        twenty times over in py-evm, in this very process)."""
        self.w3 = w3
        self.account = account
        self.timeout = timeout
        self._gas = {} if gas_limit is None else {"gas": gas_limit}
        self._advance_time = advance_time
        with self.errors("connecting"):
            self.chain_id = int(w3.eth.chain_id)
        if chain_id is not None and chain_id != self.chain_id:
            raise ChainError(f"expected chain id {chain_id}, the node says {self.chain_id}")
        self._nonce_lock = threading.Lock()
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Translate web3 and transport failures into ChainError / Reverted."""
        try:
            yield
        except (ContractLogicError, ContractCustomError, TransactionFailed) as exc:
            # (TransactionFailed: how the embedded chain's in-process provider reverts)
            raise Reverted(_reason(exc)) from None
        except TimeExhausted as exc:
            raise ChainError(f"{doing}: no receipt within {self.timeout:.0f} s ({exc})") from None
        except requests.exceptions.RequestException as exc:
            raise ChainError(f"{doing}: chain unreachable ({type(exc).__name__})") from None
        except (Web3Exception, ValueError, ConnectionError) as exc:
            raise ChainError(f"{doing}: {exc}") from None

    def contract(self, artifact: Artifact, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)

    def deploy(self, name: str, *args: Any) -> str:
        """Deploy contract ``name`` (compiled from source) and return its address."""
        return self.deploy_artifact(load_contract(name), *args)

    def deploy_artifact(self, artifact: Artifact, *args: Any, value: int = 0) -> str:
        """Deploy a compiled contract and return its address."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self._send(factory.constructor(*args), value, f"deploying {artifact.name}")
        address = receipt["contractAddress"]
        if not address:
            raise ChainError(f"deploying {artifact.name}: no contract address in the receipt")
        return str(address)

    def transact(self, function: ContractFunction, value: int = 0) -> TxReceipt:
        """Send ``function`` as a transaction and wait until it is mined."""
        return self._send(function, value, f"calling {function.fn_name}")

    def send_raw(self, to: str, data: bytes, doing: str, value: int = 0) -> TxReceipt:
        """Send ``data`` to ``to`` as it is (no ABI), and wait until it is mined."""
        return self._send(_Raw(self.w3, Web3.to_checksum_address(to), data), value, doing)

    def call(self, function: ContractFunction) -> Any:
        """Call a view function."""
        with self.errors(f"calling {function.fn_name}"):
            return function.call()

    def balance(self, address: str | None = None) -> int:
        with self.errors("reading a balance"):
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(address or self.address)))

    def advance_time(self, seconds: int) -> None:
        """Move a development chain's clock forward (embedded chain or anvil)."""
        if self._advance_time is not None:
            self._advance_time(seconds)
            return
        with self.errors("advancing time"):
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def _send(self, function: Any, value: int, doing: str) -> TxReceipt:
        with self.errors(doing):
            with self._nonce_lock:  # held only until the transaction is sent
                if self._nonce is None:
                    self._nonce = int(
                        self.w3.eth.get_transaction_count(self.account.address, "pending")
                    )
                transaction = function.build_transaction(
                    {
                        "from": self.account.address,
                        "value": value,
                        "nonce": self._nonce,
                        "chainId": self.chain_id,
                        **self._gas,
                    }
                )
                signed = self.account.sign_transaction(transaction)
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except (Web3Exception, ValueError):
                    self._nonce = None  # re-read it next time: another sender may have moved it
                    raise
                self._nonce += 1
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.timeout, poll_latency=RECEIPT_POLL_SECONDS
            )
            if receipt["status"] != 1:
                raise Reverted(self._replay_reason(transaction, receipt))
            return receipt

    def _replay_reason(self, transaction: dict[str, Any], receipt: TxReceipt) -> str:
        """Why a mined transaction failed: replay it as a call at its block."""
        call = {k: transaction[k] for k in ("from", "to", "data", "value") if k in transaction}
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except (ContractLogicError, ContractCustomError, TransactionFailed) as exc:
            return _reason(exc)
        except (Web3Exception, ValueError, TransactionNotFound):
            pass
        return f"transaction {receipt['transactionHash'].hex()} reverted"


class _Raw:
    """A transaction with ready-made data, built as a contract function is."""

    def __init__(self, w3: Web3, to: str, data: bytes) -> None:
        self.w3, self.to, self.data = w3, to, data

    def build_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        transaction = {
            **params,
            "to": self.to,
            "data": self.data,
            "gasPrice": self.w3.eth.gas_price,
        }
        if "gas" not in transaction:
            transaction["gas"] = self.w3.eth.estimate_gas(transaction)  # type: ignore[arg-type]
        return transaction


def _reason(exc: Exception) -> str:
    message = str(getattr(exc, "message", None) or exc)
    message = message.removeprefix("execution reverted: ").strip()
    # (no revert data: py-evm says b'', a JSON-RPC node "execution reverted")
    return "reverted without a reason" if message in ("", "b''", "execution reverted") else message
