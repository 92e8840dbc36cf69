"""Coverage-guided fuzzing (atheris) of every parser that takes bytes from outside:
none may fail other than with its own documented error. The default run gives each
target a short, seeded budget; ``TRUSTMESH_FUZZ_SECONDS`` sets a longer one (the
full run: 600 a target, unseeded). What a run finds is kept beside the corpus as
``fuzz_corpus/TARGET/finding-…`` and replayed here, and at the node, for good."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.fuzz_targets import TARGETS

CORPUS = Path(__file__).with_name("fuzz_corpus")
REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("TRUSTMESH_FUZZ_SECONDS", "3"))


def test_every_kept_input_is_refused_cleanly() -> None:
    """Seeds and past findings, through every target (a finding of one parser may
    reach another): nothing but the documented errors."""
    kept = sorted(CORPUS.glob("*/*"))
    assert len(kept) >= len(TARGETS)
    for path in kept:
        for target in TARGETS.values():
            target(path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_coverage_guided_fuzzing_finds_nothing(target: str, tmp_path: Path) -> None:
    fresh = tmp_path / "new"
    fresh.mkdir()
    flags = [f"-max_total_time={SECONDS}", "-rss_limit_mb=4096", "-timeout=10",
             f"-artifact_prefix={tmp_path}/"]  # fmt: skip
    if "TRUSTMESH_FUZZ_SECONDS" not in os.environ:
        flags.append("-seed=1")  # the default run: the same inputs every time
    run = subprocess.run(
        [sys.executable, "-m", "tests.reliability.fuzz", target, *flags, str(fresh),
         str(CORPUS / target)],
        cwd=REPO, capture_output=True, text=True, timeout=SECONDS + 120, check=False,
    )  # fmt: skip
    findings = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*"))
    assert run.returncode == 0 and not findings, (
        f"{target}: {[f.name for f in findings]} (copy each to fuzz_corpus/{target}/finding-…)\n"
        + run.stderr[-3000:]
    )
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done and int(done.group(1)) > 0, run.stderr[-2000:]
