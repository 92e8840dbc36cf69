"""``trustmesh bench aggregate --json``: one JSON object; every lie at every size
proven (the run refutes a posted claim per kind and size, or fails), each figure
with its baseline."""

from __future__ import annotations

import json

from tests.cli.command import no_traceback, trustmesh

KINDS = {"wrong result", "bad sum", "wrong output", "forged leaf", "foreign device", "disorder",
         "omitted"}  # fmt: skip


def test_bench_aggregate_json_shape() -> None:
    result = trustmesh("bench", "aggregate", "--json", "--readings", "2000")
    no_traceback(result)
    assert result.returncode == 0, result.stderr.decode()
    document = json.loads(result.stdout)
    assert document["benchmark"] == "aggregate" and document["readings"] == 2000
    assert document["build_readings_per_s"] > 0 and document["plain_merkle_readings_per_s"] > 0
    sizes = ["10^3", "10^6", "10^9"]
    for size in sizes:
        assert set(document["challenge"][size]) == KINDS
        assert set(document["proof_bytes"][size]) == KINDS
        assert document["verify_every_reading_gas"][size] == (
            document["verify_reading_gas"] * 10 ** int(size[3:])
        )
        assert document["post_gas"][size] > 0 and document["release_gas"][size] > 0
    # a challenge's path grows with log n: a deeper tree costs more, never less
    for kind in KINDS - {"wrong result"}:
        gas = [document["challenge"][size][kind] for size in sizes]
        assert gas[0] < gas[1] < gas[2], (kind, gas)
    # posting costs the same whatever the number of readings: no work per reading
    assert max(document["post_gas"].values()) - min(document["post_gas"].values()) < 1000
    assert set(document["goals_met"]) == {"challenge_gas_at_10^9", "post_gas", "build_10^6_s"}
