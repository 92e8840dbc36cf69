"""Detection latency of each kind of lie (p50/p99, lie to alert, 2-second
epochs, ≥ 20 runs each) and a watcher's audit rate against a node's ingest
rate, measured in the same run.

    python benchmarks/detection.py [--runs N] [--epoch S] [--readings N]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from trustmesh.bench.detection import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--epoch", type=float, default=2.0)
    parser.add_argument("--readings", type=int, default=5000)
    args = parser.parse_args()
    result = run(
        runs=args.runs,
        epoch=args.epoch,
        readings=args.readings,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
