"""Readings relayed over the libp2p mesh (one and two relays) per second, and each
batch's time to its receipts, against the same batches sent over HTTP; and the time a
new checkpoint takes to reach each of W watchers on the mesh.

    python benchmarks/mesh.py [--batches N] [--readings-per-batch K] [--watchers W]
                              [--checkpoints C] [--partition-seconds S]

Prints one JSON object; the same as ``trustmesh bench mesh --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.mesh import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--readings-per-batch", type=int, default=100)
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--partition-seconds", type=float, default=60.0)
    args = parser.parse_args()
    result = run(args.batches, args.readings_per_batch, None, args.watchers, args.checkpoints,
                 args.partition_seconds)  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
