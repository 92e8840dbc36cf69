"""docs/threat-model.md cites a test for each claim: every test it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_test_the_threat_model_cites_exists() -> None:
    text = (ROOT / "docs" / "threat-model.md").read_text()
    cited = set(CITED.findall(text))
    assert len(cited) > 50  # the pattern still finds the citations
    missing = [
        f"{path}::{name}"
        for path, name in sorted(cited)
        if not (ROOT / path).is_file()
        or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert missing == []
