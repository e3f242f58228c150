"""The known-bug corpus (configs/bugs.toml) and the logic of `oomrace bugs`, without QEMU:
the runs are fakes here; tests/race/test_known_bugs.py runs real kernels."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import binomial, bugs
from harness.arches import get_arch
from harness.errors import UsageError
from harness.kernel.build import recipes
from harness.machine import MachineOptions
from harness.stress import Scenario

from ..conftest import stress_workload

MINIMUM = ("CVE-2017-18202", "CVE-2017-18202@6.1", "CVE-2018-18281", "CVE-2018-1000200",
           "99baac21e458")


def test_the_corpus_has_the_minimum_entries_each_complete() -> None:
    corpus = {b.id: b for b in bugs.load_bugs()}
    assert set(MINIMUM) <= set(corpus)
    assert len(corpus) >= len(MINIMUM) + 2  # and at least two more real fixes of the class
    names = set(recipes.recipe_names())
    for bug in corpus.values():
        assert bug.summary and bug.fix_commit.split()[0].isalnum()
        assert bug.shows_on and not set(bug.shows_on) & set(bug.cannot_show_on)
        Scenario.parse(bug.scenario)
        if bug.ready:
            assert {bug.bug_recipe, bug.fix_recipe} <= names
        else:
            assert bug.missing  # a planned entry says what it still lacks
    assert corpus["CVE-2018-18281"].fix_recipe == "v4.14.2+mremap-flush-fix"
    assert corpus["CVE-2018-18281"].evidence is bugs.Evidence.STALE_READ


def test_list_prints_one_line_per_entry(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["bugs", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(bugs.load_bugs())
    assert any(line.startswith("CVE-2018-18281") and "mremap" in line for line in lines)
    assert any("[planned: needs" in line for line in lines)


def test_bad_entries_and_names_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bugs.toml"
    bad.write_text('[bug.x]\nsummary = "s"\n')
    with pytest.raises(UsageError, match=r"bugs.toml \[bug.'x'\]: KeyError"):
        bugs.load_bugs(bad)
    text = ('[bug."y"]\nsummary = "s"\n'
            'fix_commit = "0123 x"\nbug_recipe = "nope"\nfix_recipe = "v6.1"\n'
            'shows_on = ["x86_64"]\nscenario = "mremap"\nevidence = "stale_read"\n'
            'bug_seconds = 1\nfix_seconds = 1\nstatus = "ready"\n')
    bad.write_text(text)
    with pytest.raises(UsageError, match="unknown kernel recipe 'nope'"):
        bugs.load_bugs(bad)
    with pytest.raises(UsageError, match="unknown bug 'CVE-0'"):
        bugs.select(bugs.load_bugs(), ["CVE-0"])
    assert all(b.ready for b in bugs.select(bugs.load_bugs(), []))


class FakeResult:
    """What run_bug reads of a RunResult."""

    def __init__(self, trials: int, detections: int, first: float | None = None) -> None:
        self.stress = stress_workload(trials, detections, iterations=25 * trials).stress
        if first is not None:
            object.__setattr__(self.stress, "first_detection_seconds", first)
        self.verdict = "corrupted" if detections else "clean"
        self.reports: list[object] = []
        self.error = None
        self.reason = ""


def test_run_bug_states_the_rates_with_clopper_pearson(tmp_path: Path) -> None:
    bug = next(b for b in bugs.load_bugs() if b.id == "CVE-2018-18281")
    runs = iter([FakeResult(2, 1, 4.0), FakeResult(3, 1, 9.0), FakeResult(1, 1, 5.0),
                 FakeResult(12, 0)])
    seen: list[tuple[str, bool]] = []

    def runner(spec: object, workdir: Path) -> FakeResult:
        seen.append((spec.kernel.requested, spec.stop_on_first_detection))  # type: ignore[attr-defined]
        return next(runs)

    row = bugs.run_bug(bug, get_arch("x86_64"), tmp_path, MachineOptions(),
                       resolve=lambda recipe, arch: None,  # type: ignore[arg-type,return-value]
                       runs=3, runner=runner, progress=lambda _: None)  # type: ignore[arg-type]
    assert seen == [("v4.14.2", True)] * 3 + [("v4.14.2+mremap-flush-fix", False)]
    assert (row.detected, row.trials) == (3, 6)
    assert row.rate_ci95 == binomial.clopper_pearson_interval(3, 6, 0.95)
    assert row.median_first_detection == 5.0
    assert (row.fix_clean, row.fix_trials) == (12, 12)
    assert row.fix_upper95 == pytest.approx(binomial.clopper_pearson_upper(0, 12, 0.95))
    assert row.verdict == "caught, fix clean" and bugs.all_hold([row])
    text = bugs.table([row])
    assert "3/6" in text and "12/12" in text and "5.0 s" in text


def test_a_bug_not_caught_or_a_dirty_fix_fails_the_table(tmp_path: Path) -> None:
    bug = next(b for b in bugs.load_bugs() if b.id == "CVE-2018-18281")

    def row_for(*results: FakeResult) -> bugs.Row:
        it = iter(results)
        return bugs.run_bug(bug, get_arch("x86_64"), tmp_path, MachineOptions(),
                            resolve=lambda recipe, arch: None,  # type: ignore[arg-type,return-value]
                            runner=lambda spec, workdir: next(it),  # type: ignore[arg-type,return-value]
                            progress=lambda _: None)
    assert row_for(FakeResult(4, 0), FakeResult(4, 0)).verdict == "not caught"
    dirty = row_for(FakeResult(1, 1, 2.0), FakeResult(4, 1))
    assert dirty.verdict == "fix not clean" and not bugs.all_hold([dirty])
