"""Soak: a node at 80% of its HTTP ingest rate (measured in the same run) for
10 minutes, a watcher following it; per minute readings/s, p99 latency, RSS and
open file descriptors of the node and the watcher, and the watcher's lag.

    python benchmarks/soak.py [--minutes M] [--load SHARE]

Prints one JSON object; the same as ``trustmesh bench soak --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.soak import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8)
    args = parser.parse_args()
    print(json.dumps(run(minutes=args.minutes, load=args.load)))


if __name__ == "__main__":
    main()
