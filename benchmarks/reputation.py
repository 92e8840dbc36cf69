"""Reputation at scale: an epoch scored and committed (against the bare power
iteration on the same graph), and the Reputation contract's gas.

    python benchmarks/reputation.py [--subjects N] [--edges-per-subject K]

Prints one JSON object; the same as ``trustmesh bench reputation --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.reputation import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--edges-per-subject", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(run(subjects=args.subjects, edges_per_subject=args.edges_per_subject)))


if __name__ == "__main__":
    main()
