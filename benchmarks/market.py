"""Paying per reading over channels: voucher checks per second and a channel's gas
per paid reading, each against its baseline measured in the same run.

    python benchmarks/market.py [--vouchers N] [--readings-per-settlement K]

Prints one JSON object; the same as ``trustmesh bench market --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.market import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vouchers", type=int, default=3_000)
    parser.add_argument("--readings-per-settlement", type=int, default=5_000)
    args = parser.parse_args()
    print(json.dumps(run(args.vouchers, args.readings_per_settlement)))


if __name__ == "__main__":
    main()
