"""`oomrace evaluate` logic with a fake runner: how many clean batches a fix needs, how
each row is judged, the table and its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import evaluate
from harness.arches import get_arch
from harness.errors import UsageError
from harness.kernel.image import KernelImage
from harness.machine import MachineOptions
from harness.run import RunResult, RunSpec
from harness.schema import SCHEMA_VERSION
from harness.verdict import wilson_interval
from tests.conftest import kernel_report, stress_workload


@pytest.mark.parametrize("low", [0.05, 0.1, 0.2, 0.3, 0.44, 0.61, 0.9])
def test_clean_trials_needed_is_the_fewest_that_separate(low: float) -> None:
    n = evaluate.clean_trials_needed(low)
    assert wilson_interval(0, n)[1] < low
    assert n == 1 or wilson_interval(0, n - 1)[1] >= low


def test_no_bug_no_need() -> None:
    assert evaluate.clean_trials_needed(0.0) == 0


def test_shipped_evaluations_load() -> None:
    ev = evaluate.load_evaluation("v4.14.2")
    assert ev.bug == "v4.14.2" and ev.scenario == "oom"
    assert ev.fixes == ("v4.14.2+gather-each-vma", "v4.14.2+mm-users-fix",
                        "v4.14.2+lazy-flag-fix")
    assert set(ev.arches) == {"aarch64", "x86_64"}
    assert "v6.1-reaper-fullmm" in evaluate.evaluation_names()


def test_bad_evaluation_input_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown evaluation 'nope'; valid: "):
        evaluate.load_evaluation("nope")
    bad = tmp_path / "e.toml"
    bad.write_text('[evaluation.x]\nbug = "v4.14.2"\nfixes = ["no-such-recipe"]\n'
                   'scenario = "oom"\narches = ["aarch64"]\nbug_seconds = 1\nfix_seconds = 1\n')
    with pytest.raises(UsageError, match="unknown kernel recipe 'no-such-recipe'"):
        evaluate.load_evaluation("x", bad)
    bad.write_text('[evaluation.x]\nbug = "v4.14.2"\n')
    with pytest.raises(UsageError, match="needs bug, fixes"):
        evaluate.load_evaluation("x", bad)
    ev = evaluate.load_evaluation("v4.14.2")
    for value in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UsageError, match="--bug-seconds must be a finite number > 0"):
            evaluate.with_budget(ev, value, None)


class FakeRunner:
    """Detections per batch by (recipe, arch): the bug shows on aarch64 only."""

    def __init__(self, rates: dict[tuple[str, str], float]) -> None:
        self.rates = rates
        self.specs: list[RunSpec] = []

    def __call__(self, spec: RunSpec, workdir: Path) -> RunResult:
        self.specs.append(spec)
        trials = spec.max_trials or int(spec.duration_s // 10)
        detections = round(self.rates.get((spec.kernel.requested, spec.arch.name), 0.0)
                           * trials)
        workdir.mkdir(parents=True)
        return RunResult(
            arch=spec.arch.name, kernel=spec.kernel.requested,
            verdict="corrupted" if detections else "clean", reason="", workdir=str(workdir),
            console_log="", dmesg="",
            workload=stress_workload(trials, detections, checker=detections),
            reports=(kernel_report("pagealloc: memory corruption in kernel_poison_pages"),)
            * detections,
        )


def _image(recipe: str, arch: object) -> KernelImage:
    found = get_arch(str(getattr(arch, "name", arch)))
    return KernelImage(path=Path(f"/k/{recipe}"), arch=found, description=recipe,
                       release="4.14.2")


def test_evaluate_runs_bug_then_fixes_and_judges_them(tmp_path: Path) -> None:
    ev = evaluate.load_evaluation("v4.14.2")
    runner = FakeRunner({("v4.14.2", "aarch64"): 0.9,
                         ("v4.14.2+mm-users-fix", "aarch64"): 0.5})
    rows = evaluate.evaluate(ev, [get_arch("aarch64"), get_arch("x86_64")], tmp_path,
                             MachineOptions(cpus=8), _image, runner=runner,
                             progress=lambda _: None)
    by = {(r.recipe, r.arch): r for r in rows}
    assert len(rows) == 8
    bug = by["v4.14.2", "aarch64"]
    assert bug.verdict == "corrupted" and bug.judgement == "the bug shows"
    assert "pagealloc: memory corruption" in bug.evidence
    merged = by["v4.14.2+gather-each-vma", "aarch64"]
    assert merged.trials == evaluate.clean_trials_needed(bug.ci95[0])
    assert merged.judgement.startswith("fixes it") and merged.ci95[1] < bug.ci95[0]
    assert by["v4.14.2+mm-users-fix", "aarch64"].judgement.startswith("does not fix it")
    control = by["v4.14.2+lazy-flag-fix", "x86_64"]
    assert control.trials == evaluate.CONTROL_TRIALS
    assert control.judgement == "no judgement: the bug does not show on this arch"
    assert by["v4.14.2", "x86_64"].judgement.startswith("the bug does not show")
    assert all(s.kernel.image is not None and s.scenario == "oom" for s in runner.specs)
    text = evaluate.table(rows)
    assert text.splitlines()[0].split()[:3] == ["recipe", "arch", "verdict"]
    assert len(text.splitlines()) == 2 + 8
    out = tmp_path / "evaluation.json"
    evaluate.write_json(out, ev, rows)
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert len(data["rows"]) == 8 and data["rows"][0]["role"] == "bug"


def test_judge_fix_needs_enough_clean_batches() -> None:
    def row(verdict: str, detections: int, trials: int) -> evaluate.Row:
        return evaluate.Row("r", "aarch64", "fix", verdict, detections, trials,
                            detections / trials, wilson_interval(detections, trials), "", "",
                            None, "")
    bug = row("corrupted", 3, 6)
    assert evaluate.judge_fix(bug, row("clean", 0, 2)).startswith("inconclusive")
    assert evaluate.judge_fix(bug, row("clean", 0, 20)).startswith("fixes it")
    assert evaluate.judge_fix(bug, row("error", 0, 1)).startswith("no judgement: the fix run")
