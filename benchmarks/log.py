"""Log store: append rate, proof latency, bytes per entry, against pymerkle.

    python benchmarks/log.py [--entries N]

Prints one JSON object; the same as ``trustmesh bench log --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.log import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(run(entries=args.entries)))


if __name__ == "__main__":
    main()
