"""``trustmesh bench mesh --json``: one JSON object; every batch receipted each way
(the run fails otherwise), the mesh's rates given against those of the HTTP
batches they took turns with; every watcher
hears every checkpoint (the run fails otherwise), the times summarised; a fleet
partitioned and healed loses nothing."""

from __future__ import annotations

import json

from tests.cli.command import no_traceback, trustmesh


def test_bench_mesh_json_shape() -> None:
    result = trustmesh("bench", "mesh", "--json", "--batches", "2", "--readings-per-batch", "250",
                       "--watchers", "4", "--checkpoints", "2",
                       "--partition-seconds", "3")  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    document = json.loads(result.stdout)
    assert document["benchmark"] == "mesh" and document["readings_per_batch"] == 250
    for way in ("http", "mesh_1_relay", "mesh_2_relay"):
        row = document[way]
        assert row["readings_per_s"] > 0 and 0 < row["batch_p50_ms"] <= row["batch_p99_ms"]
    for hops, ratio in ((1, "relayed_vs_http"), (2, "relayed_2_vs_http")):
        way = document[f"mesh_{hops}_relay"]  # against the HTTP batches it took turns with
        assert document[ratio] == round(way["readings_per_s"] / way["http_readings_per_s"], 3)
    heard = document["checkpoint_propagation"]
    assert heard["watchers"] == 4 and heard["checkpoints"] == 2
    assert heard["dialling_the_node"] == 3  # the fourth hears the node through a watcher
    assert 0 <= heard["p50_ms"] <= heard["p99_ms"] <= heard["max_ms"]
    cut = document["partition"]
    assert (cut["devices"], cut["partitioned"], cut["partition_seconds"]) == (10, 3, 3)
    assert cut["receipted_over_the_mesh"] > 0 and cut["recorded"] >= 10
    assert cut["lost"] == 0 and cut["still_queued"] == 0
    assert cut["logged"] == cut["receipted"] == cut["recorded"]
    assert set(document["goals_met"]) == {"relayed_vs_http", "checkpoint_p99", "nothing_lost"}
    assert document["goals_met"]["nothing_lost"]
