"""The lab's seams without guests: a matrix axis added in the AXES table alone reaches the
product, ids, repro commands, records, JUnit and the report; schema_version in every JSON
file the lab writes; each (arch, kernel) resolved once per night."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import cli, lab, run
from harness.errors import HarnessError
from harness.kernel.image import KernelImage, KernelSource, ResolvedKernel
from harness.lab import cells, matrix, report

RECIPES = ["v6.1"]
MEMORY_MATRIX = """\
[[cell]]
arch = "x86_64"
kernel = "debian"
scenario = ["smoke", "oom"]
memory = [1024, 2048]
"""


def _memory(value: Any, where: Any, recipes: object) -> int:
    return matrix._int(value, "memory", where, 128)


MEMORY = lab.Axis("memory", "memory_mb", _memory, lambda mb: f"{mb}M", "--memory",
                  many=matrix.one_or_more)


def test_a_new_axis_needs_only_the_axes_table(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(matrix, "AXES", (*matrix.AXES, MEMORY))
    cells_ = lab.parse_matrix(MEMORY_MATRIX, Path("m.toml"), recipes=RECIPES).cells
    # The product, and the ids.
    assert [(c.id, c.memory_mb) for c in cells_] == [
        ("x86_64-debian-smoke-1024M-r0", 1024), ("x86_64-debian-smoke-2048M-r0", 2048),
        ("x86_64-debian-oom-1024M-r0", 1024), ("x86_64-debian-oom-2048M-r0", 2048)]
    big = cells_[3]
    # The repro command: the axis's flag, once.
    command = lab.repro_command(big)
    assert "--scenario oom --memory 2048 " in command and command.count("--memory") == 1
    # The record, cell.json and summary.json, and reading them back.
    record = lab.CellRecord(big, verdict="clean", outcome="pass")
    assert record.to_dict()["memory"] == 2048
    summary = lab.make_summary([record], [big.id], name="t", matrix="m.toml",
                               matrix_sha256="x", started_at="now", seconds=1)
    (tmp_path / "summary.json").write_text(json.dumps(summary.to_dict()))
    again = lab.read_summary(tmp_path)
    assert again.cells[0].cell == big and summary.to_dict()["cells"][0]["memory"] == 2048
    # JUnit properties, in our JUnit too.
    assert ("memory", "2048") in lab.junit_properties(record)
    xml = lab.junit_xml(summary).getroot()
    assert {p.get("name"): p.get("value") for p in xml.iter("property")}["memory"] == "2048"
    # The report's cell column.
    html = report.render_report(summary, [])
    assert "cell (arch-kernel-scenario-memory-repeat)" in html
    assert 'title="x86_64 · debian · oom · 2048 · repeat 0"' in html


def test_without_the_axis_memory_is_one_setting() -> None:
    with pytest.raises(lab.MatrixError, match="memory must be an integer"):
        lab.parse_matrix(MEMORY_MATRIX, Path("m.toml"), recipes=RECIPES)


# --- schema_version ---------------------------------------------------------------------------


def _night(directory: Path, version: int | None) -> Path:
    cell = lab.Cell(arch="x86_64", kernel="debian", scenario="smoke")
    record = lab.CellRecord(cell, verdict="clean", outcome="pass")
    summary = lab.make_summary([record], [cell.id], name="t", matrix="m.toml",
                               matrix_sha256="x", started_at="now", seconds=1).to_dict()
    summary.pop("schema")
    if version is not None:
        summary["schema_version"] = version
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def test_files_the_lab_writes_carry_schema_version(tmp_path: Path) -> None:
    out = tmp_path / "merged"
    assert cli.main(["lab", "merge", str(_night(tmp_path / "old", None)),
                     "--out", str(out)]) == 0  # an older night, without schema_version
    assert json.loads((out / "summary.json").read_text())["schema_version"] == 1
    cell = lab.Cell(arch="x86_64", kernel="debian", scenario="smoke")
    lab.cell_dir(tmp_path, cell.id).mkdir(parents=True)
    lab.CellRecord(cell).write(tmp_path)
    assert json.loads((lab.cell_dir(tmp_path, cell.id) / "cell.json").read_text())[
        "schema_version"] == 1
    plan = lab.Plan(out=tmp_path, matrix="m", matrix_name="m", matrix_sha256="x",
                    cells=[cell])
    assert json.loads(plan.write().read_text())["schema_version"] == 1


def test_a_newer_schema_is_refused_in_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    newer = _night(tmp_path / "newer", 2)
    assert cli.main(["lab", "merge", str(newer), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "newer oomrace (schema_version 2" in err
    _night(tmp_path / "old", 1)
    # The history skips what it cannot read.
    assert [n.night for n in lab.history_nights(tmp_path)] == ["old"]


# --- one kernel resolution per night --------------------------------------------------------------


def test_each_kernel_is_resolved_once_per_night(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    resolved: list[tuple[str, str]] = []

    def resolve(spec: str, arch: Any) -> ResolvedKernel:
        resolved.append((spec, arch.name))
        if spec == "broken":
            raise HarnessError("no such kernel")
        image = KernelImage(path=tmp_path / f"{spec}-{arch.name}", arch=arch,
                            description=spec, source=KernelSource(identity=spec))
        return ResolvedKernel(spec, arch, image)

    monkeypatch.setattr(cells.resolve, "resolve_kernel", resolve)
    monkeypatch.setattr(cells.rootfs, "build", lambda arch: SimpleNamespace(key="initramfs"))
    night = [lab.Cell(arch=a, kernel=k, scenario=s, repeat=r)
             for a in ("x86_64", "aarch64") for k in ("debian", "broken")
             for s in ("smoke", "oom") for r in (0, 1)]
    prepared = lab.prepare(night, log=open("/dev/null", "w"))  # noqa: SIM115
    assert sorted(resolved) == sorted({(c.kernel, c.arch) for c in night})
    assert set(prepared.kernels) == {"x86_64:debian", "aarch64:debian"}
    assert set(prepared.errors) == {"x86_64:broken", "aarch64:broken"}
    # The plan carries the images to the pytest workers, and a cell boots that image.
    plan = lab.Plan(out=tmp_path, matrix="m", matrix_name="m", matrix_sha256="x",
                    cells=night, kernels=prepared.kernels, build_errors=prepared.errors)
    plan = lab.Plan.read(plan.write())
    assert plan.kernels == prepared.kernels
    booted: list[ResolvedKernel] = []
    monkeypatch.setattr(run, "run_one", _fake_run(booted))
    record = lab.run_cell(night[0], plan)
    assert booted == [prepared.kernels["x86_64:debian"]] and len(resolved) == 4
    assert record.repro["kernel"]["source_identity"] == "debian"


def _fake_run(booted: list[ResolvedKernel]
              ) -> Callable[[run.RunSpec, Path], run.RunResult]:
    def run_one(spec: run.RunSpec, workdir: Path) -> run.RunResult:
        booted.append(spec.kernel)
        return run.RunResult(arch=spec.arch.name, kernel=spec.kernel.requested, verdict="clean",
                             reason="ok", workdir=str(workdir), console_log="c", dmesg="d")

    return run_one


def test_a_record_reads_back_the_same(tmp_path: Path) -> None:
    cell = lab.Cell(arch="aarch64", kernel="v6.1", scenario="oom", seed=5)
    record = replace(lab.CellRecord(cell), verdict="corrupted", trials=2, detections=1,
                     rate=0.5, reports=({"title": "BUG: x"},), events=({"kind": "oom"},))
    back = lab.CellRecord.from_dict(json.loads(json.dumps(record.to_dict())), "test")
    assert back == record
    compact = lab.CellRecord.from_dict(record.to_dict(full=False), "test")
    assert compact.report_titles == {"BUG: x": 1} and compact.reports == ()
