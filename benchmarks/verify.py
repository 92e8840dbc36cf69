"""Reading verification throughput vs the bare signature check (ES256, EdDSA).

    python benchmarks/verify.py [--readings N] [--rounds R]

Prints one JSON object; the same as ``trustmesh bench verify --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.verify import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(readings=args.readings, rounds=args.rounds)))


if __name__ == "__main__":
    main()
