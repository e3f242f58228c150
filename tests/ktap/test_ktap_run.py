"""`oomrace run --format ktap` for real: aarch64 on the v6.1-reaper-fullmm kernel the
default tier builds anyway (tests/race), two batches. Its stdout is the KTAP document
and nothing else, the run folder keeps the same text, and both our parser and the
kernel's agree with result.json. About 40-60 s of guest time on the 2-core machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from harness import ktap
from harness.run import RunResult

from ..conftest import REPO
from .conftest import leaf_counts, oracle, ours, theirs

pytestmark = [pytest.mark.guest, pytest.mark.kernel_build]


@pytest.mark.timeout(900)
def test_run_prints_its_result_as_ktap(tmp_path: Path, cli_env: dict[str, str],
                                       kunit_parser: ModuleType) -> None:
    argv = [sys.executable, "-m", "harness", "run", "--arch", "aarch64", "--kernel",
            "v6.1-reaper-fullmm", "--scenario", "mrelease", "--iterations", "50",
            "--duration", "20", "--format", "ktap", "--artifacts", str(tmp_path),
            "--json", str(tmp_path / "result.json")]
    done = subprocess.run(argv, cwd=REPO, env=cli_env, capture_output=True, text=True,
                          timeout=840, check=False)
    result = RunResult.from_json(json.loads((tmp_path / "result.json").read_text()))
    assert done.returncode == (0 if result.verdict == "clean" else 1), done.stderr
    assert result.verdict in ("clean", "corrupted"), done.stderr
    assert done.stdout.startswith("KTAP version 1\n1..1\n")
    assert "aarch64: " in done.stderr  # the human summary went to stderr
    (run_dir,) = tmp_path.glob("run-*")
    assert (run_dir / "ktap").read_text() == done.stdout
    assert ktap.parse((run_dir / "aarch64" / "ktap").read_text()) == ktap.parse(done.stdout)

    doc = ktap.parse(done.stdout)
    stress = result.stress
    assert stress is not None and stress.trials >= 1
    (guest,) = doc.tests
    assert (guest.name, guest.ok) == ("aarch64", result.verdict == "clean")
    ran = guest.subtests[:stress.trials]
    assert [t.ok for t in ran] == [not b.detected for b in stress.batches]
    assert all(t.result is ktap.Result.SKIP for t in guest.subtests[stress.trials:])
    left = max(0, 50 - stress.iterations)  # a batch may stop at its 10 s before 25
    assert len(guest.subtests) == stress.trials + (left + 24) // 25
    assert any(f"detected {stress.detections}/{stress.trials} batches" in d
               for d in guest.diagnostics)

    main = oracle(kunit_parser, done.stdout)
    assert main.counts.errors == 0
    assert [theirs(t) for t in main.subtests] == [ours(t) for t in doc.tests]
    assert (main.counts.passed, main.counts.failed, main.counts.skipped) == (
        leaf_counts(doc)["passed"], leaf_counts(doc)["failed"], leaf_counts(doc)["skipped"])
