"""Coverage-guided fuzzing of one target (atheris, libFuzzer's engine)::

    python -m tests.reliability.fuzz TARGET [libFuzzer flags] NEW_DIR KEPT_DIR

``TARGET`` is one of :data:`tests.reliability.fuzz_targets.TARGETS`; new inputs go
to the first directory, the kept ones (``fuzz_corpus/TARGET``) are read from the
second; a finding is written where ``-artifact_prefix=`` says and ends the run
with a non-zero exit. ``test_fuzz.py`` runs every target with a short budget.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["trustmesh"]):
    from tests.reliability.fuzz_targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
