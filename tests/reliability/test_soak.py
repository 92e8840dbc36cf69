"""The soak benchmark's machinery, run for seconds instead of minutes (the
figures themselves come from ``python benchmarks/soak.py``, never from a test)."""

from __future__ import annotations

from trustmesh.bench.soak import run


def test_a_short_soak_reports_a_series_and_loses_nothing() -> None:
    result = run(minutes=0.1, load=0.3, devices=16, every=2, calibrate=2)
    assert [part["until_s"] for part in result["series"]] == [2, 4, 6]
    assert result["calibrated_readings_per_s"] > 0
    assert 0 < result["readings_per_s"] <= result["calibrated_readings_per_s"]
    assert result["lost"] == {"refused": 0, "failed_batches": 0}
    assert all(part["node_fds"] and part["watcher_rss_mb"] for part in result["series"][1:])
    assert result["watcher_behind_at_end"] is not None
    caught_up = result["watcher_catch_up"]  # honest readings: audited, no alert
    assert caught_up["seconds"] is not None and caught_up["alerts"] == 0
