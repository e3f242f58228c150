"""The nightly lab without guests: matrix parsing and refusals (with lines), expansion,
sharding, merging, comparison with previous nights, JUnit and the HTML report."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from harness import cli, ktap, lab
from harness.arches import Arch
from harness.errors import HarnessError
from harness.kernel.image import KernelImage, ResolvedKernel
from harness.kernel_log import Event
from harness.lab import report as lab_report
from harness.verdict import wilson_interval
from tests.conftest import kernel_report, stress_workload

REPO = Path(__file__).resolve().parents[2]
RECIPES = ["v6.1", "v6.1-reaper-fullmm"]

GOOD = """\
name = "t"

[defaults]
arch = ["x86_64", "aarch64"]
kernel = "debian"
cpus = 8

[[cell]]
kernel = "v6.1-reaper-fullmm"
scenario = "mrelease"
expected = { aarch64 = "corrupted", x86_64 = "clean" }
iterations = 50
duration = 20
repeats = 2
seed = 7

[[cell]]
arch = "arm64"
scenario = ["madvise", "smoke"]
duration = 10
"""


def parse(text: str) -> lab.Matrix:
    return lab.parse_matrix(text, Path("m.toml"), recipes=RECIPES)


def refused(text: str) -> lab.MatrixError:
    with pytest.raises(lab.MatrixError) as info:
        parse(text)
    return info.value


# --- the shipped matrices ----------------------------------------------------------------


def test_shipped_matrices_parse() -> None:
    nightly = lab.load_matrix(REPO / "configs" / "nightly.toml")
    ci = lab.load_matrix(REPO / "configs" / "ci-matrix.toml")
    assert len(nightly.cells) == len({c.id for c in nightly.cells}) > 20
    ids = {c.id: c for c in ci.cells}
    assert len(ids) == 8
    assert ids["aarch64-v6.1-reaper-fullmm-mrelease-r0"].expected == "corrupted"
    assert ids["x86_64-v4.14.2-oom-r0"].expected == "clean"  # x86 flushes fullmm gathers
    assert {c.arch for c in ci.cells} == {"x86_64", "aarch64"}
    assert {c.kernel for c in ci.cells} == {"debian", "v6.1-reaper-fullmm", "v4.14.2"}
    assert {c.scenario for c in ci.cells} == {"mrelease", "oom", "madvise"}


# --- expansion ---------------------------------------------------------------------------


def test_expansion_is_the_product_with_defaults_and_overrides() -> None:
    m = parse(GOOD)
    assert [c.id for c in m.cells] == [
        "x86_64-v6.1-reaper-fullmm-mrelease-r0", "x86_64-v6.1-reaper-fullmm-mrelease-r1",
        "aarch64-v6.1-reaper-fullmm-mrelease-r0", "aarch64-v6.1-reaper-fullmm-mrelease-r1",
        "aarch64-debian-madvise-r0", "aarch64-debian-smoke-r0",
    ]
    by = {c.id: c for c in m.cells}
    bug = by["aarch64-v6.1-reaper-fullmm-mrelease-r1"]
    assert (bug.expected, bug.iterations, bug.duration_s, bug.cpus, bug.seed) == (
        "corrupted", 50, 20.0, 8, 8)  # seed + repeat
    assert by["x86_64-v6.1-reaper-fullmm-mrelease-r0"].expected == "clean"
    madvise = by["aarch64-debian-madvise-r0"]
    assert (madvise.duration_s, madvise.iterations, madvise.expected) == (10.0, 0, "clean")
    assert madvise.timeout >= madvise.boot_timeout + madvise.duration_s + 120
    assert madvise.line == 17  # the [[cell]] header it came from
    assert by["aarch64-debian-smoke-r0"].cpus == 8  # cpus from [defaults] wins
    assert m.name == "t" and len(m.sha256) == 64


def test_defaults_cpus_depend_on_scenario_and_seed_is_stable() -> None:
    text = '[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = ["smoke", "oom"]\n'
    a, b = parse(text).cells
    assert (a.cpus, b.cpus) == (2, 8)
    assert a.seed == parse(text).cells[0].seed  # derived from the id: the same every night
    assert a.seed != b.seed


def test_expected_table_in_defaults_may_name_arches_an_entry_does_not_run() -> None:
    text = ('[defaults]\nkernel = "v6.1-reaper-fullmm"\nscenario = "mrelease"\n'
            'expected = { aarch64 = "corrupted", x86_64 = "clean" }\n'
            '[[cell]]\narch = "arm64"\n[[cell]]\narch = "x86_64"\nscenario = "oom"\n')
    assert [(c.id, c.expected) for c in parse(text).cells] == [
        ("aarch64-v6.1-reaper-fullmm-mrelease-r0", "corrupted"),
        ("x86_64-v6.1-reaper-fullmm-oom-r0", "clean")]
    error = refused(text.replace("aarch64 =", "riscv64 ="))
    assert error.line == 4 and "unknown arch 'riscv64'" in error.reason


def test_kernel_path_is_relative_to_the_matrix(tmp_path: Path) -> None:
    image = tmp_path / "images" / "bzImage"
    image.parent.mkdir()
    image.write_bytes(b"x")
    text = '[[cell]]\narch = "x86_64"\nkernel = "images/bzImage"\nscenario = "smoke"\n'
    (cell,) = lab.parse_matrix(text, tmp_path / "m.toml", recipes=RECIPES).cells
    assert cell.kernel == str(image.resolve())
    assert cell.id == "x86_64-bzImage-smoke-r0"


# --- refusals, each with its line ---------------------------------------------------------

BASE = '[defaults]\narch = "x86_64"\nkernel = "debian"\nscenario = "mrelease"\n\n[[cell]]\n'


@pytest.mark.parametrize(("text", "line", "reason"), [
    (BASE + "cpus = 8\n\n[[cell]]\nkernel = \"v6.1\"\nbogus = 1\n", 11,
     r"unknown key 'bogus' in \[\[cell\]\] #2"),
    ('[defaults]\narch = "x86_64"\nwat = 3\n[[cell]]\nkernel = "debian"\n', 3,
     r"unknown key 'wat' in \[defaults\]"),
    ('title = "x"\n[[cell]]\narch = "x86_64"\n', 1, r"unknown key 'title' in the matrix"),
    ('[cells]\n[[cell]]\n', 1, r"unknown key 'cells'"),
    ('[defaults]\narch = ["x86_64", "riscv64"]\nkernel = "debian"\nscenario = "oom"\n'
     "[[cell]]\n", 2, r"unknown arch 'riscv64'; valid arches: x86_64, aarch64"),
    (BASE + 'kernel = "v9.9"\n', 7, r"unknown kernel 'v9.9'; valid kernels: debian, v6.1"),
    (BASE + 'scenario = "fork"\n', 7, r"unknown scenario 'fork'; valid scenarios: smoke"),
    (BASE + 'expected = "flaky"\n', 7, r"expected must be clean or corrupted"),
    (BASE + 'expected = { aarch64 = "corrupted" }\n', 7,
     r"expected names arch 'aarch64', which this entry does not run"),
    (BASE + 'arch = ["x86_64", "aarch64"]\nexpected = { aarch64 = "corrupted" }\n', 8,
     r"expected gives no outcome for x86_64"),
    (BASE + 'expected = { x86_64 = "sometimes" }\n', 7,
     r"expected outcome for x86_64 must be clean or corrupted"),
    (BASE + "cpus = 0\n", 7, r"cpus must be an integer >= 1, not 0"),
    (BASE + "cpus = true\n", 7, r"cpus must be an integer >= 1, not True"),
    (BASE + "memory = 64\n", 7, r"memory must be an integer >= 128"),
    (BASE + "duration = 0\n", 7, r"duration must be a number > 0"),
    (BASE + "iterations = -5\n", 7, r"iterations must be an integer >= 0"),
    (BASE + "repeats = 0\n", 7, r"repeats must be an integer >= 1"),
    (BASE + 'accel = "hvf"\n', 7, r"accel must be one of tcg, kvm, auto"),
    (BASE + "writers = 8\ncpus = 8\n", 7, r"writers \(8\) must be fewer than the guest's cpus"),
    (BASE + "duration = 100\ntimeout = 60\n", 8, r"timeout 60 s is shorter than"),
    (BASE + 'scenario = "smoke"\nexpected = "corrupted"\n', 8,
     r"smoke cannot be expected to corrupt"),
    (BASE + 'arch = []\n', 7, r"arch must be a name or a non-empty list"),
    (BASE + 'kernel = ["debian", "debian"]\n', 7, r"lists a name twice"),
    (BASE + "\n[[cell]]\nrepeats = 1\n", 8,
     r"cell x86_64-debian-mrelease-r0 is already in the matrix \(line 6\)"),
    ('[[cell]]\narch = "x86_64"\nscenario = "oom"\n', 1,
     r"\[\[cell\]\] #1 has no kernel \(and \[defaults\] gives none\)"),
    ('[defaults]\narch = "x86_64"\n', None, r"the matrix has no cells"),
    ('[[cell]]\narch = "x86_64"\nkernel = "debian\n', 3, r"not valid TOML"),
])
def test_refusals_name_the_line_and_the_reason(text: str, line: int | None,
                                               reason: str) -> None:
    error = refused(text)
    assert error.line == line, (str(error), text)
    assert re.search(reason, error.reason), str(error)
    assert str(error).startswith(f"m.toml:{line}: " if line else "m.toml: ")


def test_refusal_reaches_the_cli_as_exit_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "bad.toml"
    matrix.write_text(BASE + "cpus = 0\n")
    assert cli.main(["lab", str(matrix), "--out", str(tmp_path / "night")]) == 2
    err = capsys.readouterr().err
    assert f"{matrix}:7: cpus must be an integer >= 1" in err
    assert not (tmp_path / "night").exists()  # refused before anything was made


def test_cli_lists_cells_of_a_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "m.toml"
    matrix.write_text(GOOD)
    assert cli.main(["lab", str(matrix), "--list", "--shard", "2/2"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == [c.id for c in lab.shard_cells(lab.load_matrix(matrix).cells, 2, 2)]


# --- sharding and parallelism ----------------------------------------------------------------


def test_shards_are_deterministic_disjoint_balanced_and_cover_all() -> None:
    cells = lab.load_matrix(REPO / "configs" / "nightly.toml").cells
    for count in (1, 2, 3, 5):
        slices = [lab.shard_cells(cells, i, count) for i in range(1, count + 1)]
        again = [lab.shard_cells(list(reversed(cells)), i, count) for i in range(1, count + 1)]
        assert [{c.id for c in s} for s in slices] == [{c.id for c in s} for s in again]
        ids = [c.id for s in slices for c in s]
        assert sorted(ids) == sorted(c.id for c in cells)  # union = all, no overlap
        sizes = [len(s) for s in slices]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(HarnessError, match="--shard must be i/N"):
        lab.parse_shard(text)


def test_default_jobs_bounded_by_cores_and_memory() -> None:
    cells = parse(GOOD).cells  # 1024 MiB guests
    assert lab.default_jobs(cells, cores=2, mem_free_mb=20000) == 1
    assert lab.default_jobs(cells, cores=16, mem_free_mb=20000) == 6  # one per cell at most
    assert lab.default_jobs(cells, cores=16, mem_free_mb=3 * 1536) == 3
    assert lab.default_jobs(cells, cores=1, mem_free_mb=100) == 1


# --- fake nights ---------------------------------------------------------------------------


def record(arch: str, kernel: str, scenario: str, verdict: str, expected: str = "clean",
           detections: int = 0, trials: int = 4, repeat: int = 0) -> lab.CellRecord:
    cell = lab.Cell(arch=arch, kernel=kernel, scenario=scenario, repeat=repeat,
                    expected=expected)
    low, high = wilson_interval(detections, trials)
    reports = ({"title": "pagealloc: memory corruption in post_alloc_hook"},) * 3
    return lab.CellRecord(
        cell=cell, verdict=verdict, reason=f"{verdict} reason", trials=trials,
        detections=detections, rate=detections / trials if trials else None,
        ci95=(low, high), iterations=trials * 25, seconds=42.0,
        outcome=lab.outcome(expected, verdict),
        reports=reports if verdict == "corrupted" else ())


def night(records: list[lab.CellRecord], name: str = "night",
          planned: list[str] | None = None, finished: str = "2024-05-01T03:00:00+00:00"
          ) -> lab.NightSummary:
    s = lab.make_summary(records, planned or [r.id for r in records], name="t",
                         matrix="m.toml", matrix_sha256="abc", started_at=finished,
                         seconds=60, night=name)
    return replace(s, finished_at=finished)


def write_night(directory: Path, records: list[lab.CellRecord],
                planned: list[str] | None = None, **kw: Any) -> lab.NightSummary:
    directory.mkdir(parents=True)
    for r in records:
        cell = lab.cell_dir(directory, r.id)
        cell.mkdir(parents=True)
        (cell / "cell.json").write_text(json.dumps(r.to_dict()))
        (cell / "console.log").write_text(f"console of {r.id}\n")
    summary = night(records, directory.name, planned, **kw)
    (directory / "summary.json").write_text(json.dumps(summary.to_dict()))
    return summary


BUG = ("aarch64", "v6.1-reaper-fullmm", "mrelease")
CONTROL = ("x86_64", "v6.1-reaper-fullmm", "mrelease")


# --- comparison -----------------------------------------------------------------------------


def kinds(comparison: lab.Comparison, key: str = "regressions") -> dict[str, str]:
    return {r.id: r.kind for r in getattr(comparison, key)}


def test_compare_finds_regressions_and_fixes() -> None:
    prev = night([
        record(*CONTROL, "clean"),
        record(*BUG, "corrupted", "corrupted", 4, 4),
        record("x86_64", "debian", "madvise", "clean"),
        record("x86_64", "debian", "oom", "corrupted"),  # failing last night
        record("aarch64", "debian", "oom", "clean"),
        record("aarch64", "debian", "smoke", "clean", trials=0),
    ])
    cur = night([
        record(*CONTROL, "corrupted", detections=1),  # clean -> corrupts
        record(*BUG, "clean", "corrupted", 0, 4),  # stopped reproducing
        record("x86_64", "debian", "madvise", "crashed"),  # clean -> crashes
        record("x86_64", "debian", "oom", "clean"),  # fixed
        record("aarch64", "debian", "oom", "error"),  # passed, now a boot error
        record("aarch64", "debian", "munmap", "clean"),  # new
    ])
    c = lab.compare(prev, cur)
    assert kinds(c) == {
        "x86_64-v6.1-reaper-fullmm-mrelease-r0": "now-corrupts",
        "aarch64-v6.1-reaper-fullmm-mrelease-r0": "stopped-reproducing",
        "x86_64-debian-madvise-r0": "now-crashes",
        "aarch64-debian-oom-r0": "now-fails",
    }
    assert kinds(c, "fixes") == {"x86_64-debian-oom-r0": "fixed"}
    assert c.new == ("aarch64-debian-munmap-r0",)
    assert c.missing == ("aarch64-debian-smoke-r0",)
    assert lab.exit_code(replace(cur, comparison=c)) == 3


def test_rate_shift_is_fishers_exact_test() -> None:
    prev = night([record(*BUG, "corrupted", "corrupted", 2, 200)])  # 1%
    moved = night([record(*BUG, "corrupted", "corrupted", 2, 2)])
    similar = night([record(*BUG, "corrupted", "corrupted", 1, 40)])
    c = lab.compare(prev, moved)
    assert kinds(c) == {"aarch64-v6.1-reaper-fullmm-mrelease-r0": "rate-shift"}
    assert "Fisher's exact test p = 0.0003 " in c.regressions[0].detail
    assert lab.compare(prev, similar).regressions == ()
    # Typical nights (README): 1/8 -> 6/8 is a shift; 0/4 -> 3/4 cannot be one (p = 0.14);
    # the old rule (disjoint 95% Wilson intervals) flagged neither.
    eight = lab.compare(night([record(*BUG, "corrupted", "corrupted", 1, 8)]),
                        night([record(*BUG, "corrupted", "corrupted", 6, 8)]))
    assert kinds(eight) == {"aarch64-v6.1-reaper-fullmm-mrelease-r0": "rate-shift"}
    four = lab.compare(night([record(*BUG, "corrupted", "corrupted", 0, 4)]),
                       night([record(*BUG, "corrupted", "corrupted", 3, 4)]))
    assert four.rate_changes == ()
    # A cell expected to corrupt that starts corrupting again is a fix, not a regression.
    was_clean = night([record(*BUG, "clean", "corrupted", 0, 4)])
    back = lab.compare(was_clean, night([record(*BUG, "corrupted", "corrupted", 1, 4)]))
    assert back.regressions == () and kinds(back, "fixes")


def test_rate_shifts_are_corrected_for_the_cells_compared() -> None:
    """Holm over the cells with detections: p = 0.041 is a shift alone, not among four
    cells that all detected something; a clean-both-nights cell does not count."""
    def cell(scenario: str, detections: int, trials: int = 8) -> lab.CellRecord:
        return record("aarch64", "v6.1", scenario, "corrupted", "corrupted", detections, trials)

    prev = night([cell("a", 1), cell("b", 2), cell("c", 2), cell("d", 2),
                  record("x86_64", "debian", "oom", "clean")])
    cur = night([cell("a", 6), cell("b", 3), cell("c", 2), cell("d", 1),
                 record("x86_64", "debian", "oom", "clean")])
    assert lab.compare(prev, cur).rate_changes == ()
    alone = lab.compare(night([cell("a", 1), record("x86_64", "debian", "oom", "clean")]),
                        night([cell("a", 6), record("x86_64", "debian", "oom", "clean")]))
    assert [r.id for r in alone.rate_changes] == ["aarch64-v6.1-a-r0"]
    assert "over 1 cell(s)" in alone.rate_changes[0].detail
    assert lab.holm_rejections({"x": 0.01, "y": 0.02, "z": 0.04}, 0.05) == {
        "x": pytest.approx(0.05 / 3), "y": pytest.approx(0.025), "z": pytest.approx(0.05)}
    assert lab.holm_rejections({"x": 0.02, "y": 0.001}, 0.05) == {
        "y": pytest.approx(0.025), "x": pytest.approx(0.05)}
    assert lab.holm_rejections({"x": 0.03, "y": 0.04}, 0.05) == {}


def test_exit_codes() -> None:
    ok = night([record(*CONTROL, "clean")])
    assert lab.exit_code(ok) == 0
    assert lab.exit_code(night([record(*CONTROL, "corrupted")])) == 1
    assert lab.exit_code(night([record(*CONTROL, "clean")],
                               planned=["x", CONTROL[0]])) == 1  # a cell did not run
    assert lab.exit_code(replace(ok, interrupted=True)) == 130


def test_history_is_oldest_first_and_skips_this_night(tmp_path: Path) -> None:
    write_night(tmp_path / "b", [record(*BUG, "corrupted", "corrupted", 4, 4)],
                finished="2024-05-02T03:00:00+00:00")
    write_night(tmp_path / "a", [record(*BUG, "corrupted", "corrupted", 3, 4)],
                finished="2024-05-01T03:00:00+00:00")
    write_night(tmp_path / "c", [record(*BUG, "corrupted", "corrupted", 1, 4)],
                finished="2024-05-03T03:00:00+00:00")
    (tmp_path / "junk").mkdir()
    nights = lab.history_nights(tmp_path, exclude=tmp_path / "c")
    assert [n.night for n in nights] == ["a", "b"]


# --- merge --------------------------------------------------------------------------------


def test_merge_joins_shards_into_one_night(tmp_path: Path) -> None:
    all_records = [record(*BUG, "corrupted", "corrupted", 2, 2), record(*CONTROL, "clean"),
                   record("x86_64", "debian", "madvise", "clean")]
    planned = sorted(r.id for r in all_records)
    cells = [r.cell for r in all_records]
    shards = [lab.shard_cells(cells, i, 2) for i in (1, 2)]
    dirs = []
    for i, shard in enumerate(shards, start=1):
        ids = {c.id for c in shard}
        d = tmp_path / f"shard-{i}"
        write_night(d, [r for r in all_records if r.id in ids], planned=sorted(ids))
        dirs.append(d)
    out = tmp_path / "merged"
    assert cli.main(["lab", "merge", *map(str, dirs), "--out", str(out)]) == 0
    merged = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in merged["cells"]] == planned == merged["planned"]
    assert merged["totals"]["passed"] == 3 and len(merged["shards"]) == 2
    for cid in planned:
        assert (out / "cells" / cid / "console.log").read_text() == f"console of {cid}\n"
    junit = ET.parse(out / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == 3
    assert (out / "report.html").is_file()
    # The same shards again overlap: refused.
    with pytest.raises(HarnessError, match="shards must not overlap"):
        lab.merge([dirs[0], dirs[0]], tmp_path / "again")


def test_merge_refuses_different_matrices(tmp_path: Path) -> None:
    write_night(tmp_path / "a", [record(*BUG, "corrupted", "corrupted", 2, 2)])
    write_night(tmp_path / "b", [record(*CONTROL, "clean")])
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    summary["matrix_sha256"] = "other"
    (tmp_path / "b" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(HarnessError, match="different matrices"):
        lab.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")


def test_merge_with_compare_exits_3_on_a_regression(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_night(tmp_path / "prev", [record(*CONTROL, "clean")])
    write_night(tmp_path / "s1", [record(*CONTROL, "corrupted", detections=2)])
    code = cli.main(["lab", "merge", str(tmp_path / "s1"), "--out", str(tmp_path / "m"),
                     "--compare", str(tmp_path / "prev" / "summary.json")])
    assert code == 3
    assert "REGRESSION x86_64-v6.1-reaper-fullmm-mrelease-r0: now-corrupts" in \
        capsys.readouterr().out


# --- JUnit and the report --------------------------------------------------------------------


def test_junit_has_a_testcase_per_cell_with_figures(tmp_path: Path) -> None:
    s = night([record(*BUG, "corrupted", "corrupted", 2, 2),
               record(*CONTROL, "corrupted", detections=1)],
              planned=[f"{'-'.join(BUG)}-r0", f"{'-'.join(CONTROL)}-r0", "x86_64-debian-oom-r0"])
    lab.junit_xml(s).write(tmp_path / "j.xml", encoding="utf-8", xml_declaration=True)
    root = ET.parse(tmp_path / "j.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    bug = cases["test_cell[aarch64-v6.1-reaper-fullmm-mrelease-r0]"]
    props = {p.get("name"): p.get("value") for p in bug.iter("property")}
    assert props["verdict"] == "corrupted" and props["expected"] == "corrupted"
    assert props["detections"] == "2" and props["trials"] == "2"
    assert props["rate"] == "1.0000" and float(props["ci95_low"]) == pytest.approx(0.342, 1e-2)
    assert props["console_log"].endswith("console.log")
    assert bug.find("failure") is None
    control = cases["test_cell[x86_64-v6.1-reaper-fullmm-mrelease-r0]"]
    failure = control.find("failure")
    assert failure is not None and "expected clean, got corrupted" in (failure.text or "")
    assert cases["test_cell[x86_64-debian-oom-r0]"].find("skipped") is not None


def test_report_html_is_self_contained_with_table_and_plots(tmp_path: Path) -> None:
    history = [night([record(*BUG, "corrupted", "corrupted", k, 4), record(*CONTROL, "clean")],
                     name=f"2024-05-0{k}", finished=f"2024-05-0{k}T03:00:00+00:00")
               for k in (1, 2, 3)]
    cur = night([record(*BUG, "corrupted", "corrupted", 4, 4),
                 record(*CONTROL, "corrupted", detections=1),
                 record("x86_64", "debian", "smoke", "clean", trials=0)], name="2024-05-04")
    cur = replace(cur, comparison=lab.compare(history[-1], cur))
    text = lab_report.render_report(cur, history)
    (tmp_path / "report.html").write_text(text)
    assert text.count('<tr class="cell ') == 3
    assert '<tr class="cell fail" id="cell-x86_64-v6.1-reaper-fullmm-mrelease-r0">' in text
    assert 'class="tag regression"' in text and "now-corrupts" in text
    assert text.count('<svg class="plot"') == 3
    bug_plot = re.search(r'<svg class="plot"[^>]*data-cell="aarch64-[^"]*".*?</svg>', text)
    assert bug_plot is not None
    assert bug_plot.group(0).count("<circle") == 4  # three earlier nights and this one
    assert 'class="point current"' in bug_plot.group(0)
    assert "<polyline" in bug_plot.group(0) and bug_plot.group(0).count('class="ci"') == 4
    assert "no stress batches" in text  # the smoke cell has no rate to plot
    assert "1.00 [0.51, 1.00]" in text  # the rate and its Wilson interval in the table
    # Self-contained: no scripts, no external assets.
    assert "<script" not in text and "<link" not in text and " src=" not in text
    assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text)
    assert "<style>" in text


def test_report_escapes_text() -> None:
    r = replace(record(*CONTROL, "crashed"), reason='<img src=x onerror="alert(1)">',
                reports=({"title": "<b>oops</b>"},))
    text = lab_report.render_report(night([r]), [])
    assert "<img" not in text and "<b>oops" not in text and "&lt;b&gt;oops" in text


# --- one cell, with the guest run replaced -----------------------------------------------------


def test_run_cell_writes_its_record_at_once(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import run

    def fake_run_one(spec: run.RunSpec, workdir: Path) -> run.RunResult:
        (workdir / "console.log").write_text("log\n")
        return run.RunResult(
            arch=spec.arch.name, kernel=spec.kernel.requested, verdict="corrupted",
            reason="pagealloc", workdir=str(workdir), console_log=str(workdir / "console.log"),
            dmesg=str(workdir / "dmesg.txt"), qemu_argv=("qemu-system-aarch64", "-M", "virt"),
            workload=stress_workload(trials=2, detections=2, iterations=42),
            reports=(kernel_report("pagealloc: memory corruption in post_alloc_hook"),),
            events=(Event("boot_banner", 0),))

    def no_kernel(*_: object) -> None:
        raise HarnessError("no kernel here")

    def fake_kernel(requested: str, arch: Arch) -> ResolvedKernel:
        return ResolvedKernel(requested, arch, KernelImage(Path("/k"), arch, "fake"))

    monkeypatch.setattr(run, "run_one", fake_run_one)
    monkeypatch.setattr(lab.cells.resolve, "resolve_kernel", fake_kernel)
    monkeypatch.setattr(lab.cells.resolve, "resolve", no_kernel)
    monkeypatch.setattr(lab.cells.rootfs, "build", no_kernel)
    bug, control = (lab.Cell(*BUG, expected="corrupted", seed=3),
                    lab.Cell(*CONTROL, expected="clean"))
    plan = lab.Plan(out=tmp_path, matrix="m.toml", matrix_name="t", matrix_sha256="x",
                    cells=[bug, control],
                    build_errors={lab.build_key(*CONTROL[:2]): "tuxmake failed"})
    rec = lab.run_cell(bug, plan)
    saved = json.loads((tmp_path / "cells" / bug.id / "cell.json").read_text())
    assert saved == {"schema_version": 1, **json.loads(json.dumps(rec.to_dict()))}
    assert (rec.verdict, rec.outcome, rec.detections, rec.iterations) == (
        "corrupted", "pass", 2, 42)
    assert rec.repro["qemu"]["argv"][0] == "qemu-system-aarch64"
    assert rec.repro["workload"]["seed"] == 3
    assert "--seed 3" in rec.repro["command"]
    assert rec.repro["host"]["cpus"]
    cell_ktap = ktap.parse((tmp_path / "cells" / bug.id / "ktap").read_text())
    assert [(t.name, t.result.value) for t in cell_ktap.tests] == [(bug.id, "pass")]
    assert cell_ktap.flatten() == [((bug.id, f"batch_{i}"), ktap.Result.XFAIL) for i in (1, 2)]
    failed = lab.run_cell(control, plan)
    assert failed.verdict == "error" and "tuxmake failed" in (failed.reason or "")
    assert failed.outcome == "fail"
    not_built = ktap.parse((tmp_path / "cells" / control.id / "ktap").read_text()).tests[0]
    assert not_built.result is ktap.Result.FAIL and not not_built.ok
    assert not_built.subtests[0].result is ktap.Result.SKIP
    assert "tuxmake failed" in not_built.subtests[0].reason
    assert "expected clean, got error" in lab.failure_message(failed)

    def timed_out(spec: run.RunSpec, workdir: Path) -> run.RunResult:
        pytest.fail("Timeout >900.0s")

    monkeypatch.setattr(run, "run_one", timed_out)
    late = lab.run_cell(bug, plan)
    assert late.verdict == "error" and "did not finish within its timeout" in (late.reason or "")
    assert json.loads((tmp_path / "cells" / bug.id / "cell.json").read_text())["verdict"] == \
        "error"
