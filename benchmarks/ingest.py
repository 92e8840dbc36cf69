"""End-to-end ingest: readings/s over HTTP and MQTT against a local node
(receipt received), p50/p99 latency, node RSS, and this machine's raw ES256
verification rate on all cores, measured in the same run.

    python benchmarks/ingest.py [--readings N] [--duration SECONDS]

Prints one JSON object; the same as ``trustmesh bench ingest --json``.
"""

from __future__ import annotations

import argparse
import json

from trustmesh.bench.ingest import READINGS, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=READINGS)
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()
    print(json.dumps(run(readings=args.readings, duration=args.duration)))


if __name__ == "__main__":
    main()
