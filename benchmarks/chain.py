"""Contract gas (register, batch register, rotate, revoke, anchor at 2^10, 2^20,
2^32), gas per reading, and embedded-chain transactions per second against
eth-tester's in-memory chain.

    python benchmarks/chain.py

Prints one JSON object; the same as ``trustmesh bench chain --json``.
"""

from __future__ import annotations

import json

from trustmesh.bench.chain import run


def main() -> None:
    print(json.dumps(run()))


if __name__ == "__main__":
    main()
