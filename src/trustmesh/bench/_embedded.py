"""A throwaway embedded chain for a benchmark's gas figures, with clients for its
first development accounts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain

__all__ = ["embedded_clients"]


@contextmanager
def embedded_clients(count: int) -> Iterator[tuple[EmbeddedChain, list[ChainClient]]]:
    """A fresh embedded chain in a temporary directory and ``count`` clients; both
    gone on leaving."""
    with tempfile.TemporaryDirectory(prefix="trustmesh-bench-") as directory:
        chain = EmbeddedChain.open(Path(directory) / "chain")
        try:
            yield (
                chain,
                [
                    ChainClient(chain.w3, account, advance_time=chain.advance_time)
                    for account in chain.dev_accounts[:count]
                ],
            )
        finally:
            chain.close()
