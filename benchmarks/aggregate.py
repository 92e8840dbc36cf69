"""Aggregates: a claim's tree built per second against a plain Merkle tree, and
the gas of posting a claim and of proving each kind of lie at 10^3, 10^6 and
10^9 readings, against checking every reading on-chain.

    python benchmarks/aggregate.py [--readings N]

Prints one JSON object; the same as ``trustmesh bench aggregate --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.aggregate import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(run(args.readings)))


if __name__ == "__main__":
    main()
