"""The LAVA engine for real: two cells of configs/ci-matrix.toml (the bug on arm64, Debian's
x86_64 kernel clean; the kernels test_lab.py's night builds and fetches) as LAVA job
definitions run by Debian's lava-dispatcher (`lava-run`, the dispatcher without a server,
on a qemu device dictionary we write), read back into a night, with the verdicts the local
engine is held to for the same cells. The `full` test also runs the local engine on them
and compares the two nights cell by cell."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from harness import ktap, lab

from ..conftest import qemu_processes_with
from .test_lab import CI_MATRIX, oomrace

CELLS = ("aarch64-v6.1-reaper-fullmm-mrelease-r0", "x86_64-debian-mrelease-r0")
SELECT = " or ".join(CELLS)
LAVA_TMP = "/var/lib/lava/dispatcher/tmp/"  # where lava-dispatcher puts a job's images
NIGHT_TIMEOUT = 900  # about 2.5 minutes on the 2-core machine, one job at a time

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def need_lava_run() -> None:
    if shutil.which("lava-run") is None:
        problem = "lava-run is not installed (./bootstrap lava, or apt-get install lava-dispatcher)"
        if os.environ.get("CI"):
            pytest.fail(f"{problem}: ./bootstrap test installs it for CI")
        pytest.skip(problem)


def run_night(out: Path, *engine: str) -> dict[str, Any]:
    proc = oomrace("lab", str(CI_MATRIX), "--out", str(out), "-k", SELECT, "-j", "1",
                   *engine, timeout=NIGHT_TIMEOUT)
    (out.parent / f"{out.name}.stdout").write_text(proc.stdout + "\n--- stderr ---\n"
                                                   + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert qemu_processes_with(str(out)) == []
    assert qemu_processes_with(LAVA_TMP) == []  # the dispatcher's QEMU ended with its job
    return json.loads((out / "summary.json").read_text())


def verdicts(summary: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in summary["cells"]}


@pytest.fixture(scope="module")
def lava_night(oomrace_artifacts: Path) -> tuple[Path, dict[str, Any]]:
    need_lava_run()
    out = oomrace_artifacts / "lava" / "lava-run-night"
    if out.exists():
        shutil.rmtree(out)
    return out, run_night(out, "--engine", "lava-run")


@pytest.mark.timeout(NIGHT_TIMEOUT + 120)
def test_lava_run_night_gives_the_local_engines_verdicts(
        lava_night: tuple[Path, dict[str, Any]]) -> None:
    out, summary = lava_night
    expected = {c.id: c.expected for c in lab.load_matrix(CI_MATRIX).cells if c.id in CELLS}
    assert expected == {CELLS[0]: "corrupted", CELLS[1]: "clean"}
    assert verdicts(summary) == expected  # what test_lab.py holds the local engine to
    for cid in CELLS:
        folder = out / "cells" / cid
        job = json.loads((folder / "lava-job.yaml").read_text())
        assert job["device_type"] == "qemu"
        assert [next(iter(a)) for a in job["actions"]] == ["deploy", "boot", "test"]
        cell = json.loads((folder / "cell.json").read_text())
        assert cell["trials"] >= 1 and cell["iterations"] > 0
        assert "OOMRACE-READY" in (folder / "console.log").read_text()
        cell_ktap = ktap.parse((folder / "ktap").read_text())
        assert cell_ktap.complete and [t.name for t in cell_ktap.tests] == [cid]
        assert cell_ktap.tests[0].ok  # as expected: XFAIL detections, a clean control
    bug = json.loads((out / "cells" / CELLS[0] / "cell.json").read_text())
    assert bug["detections"] >= 1
    assert any("memory corruption" in r["title"] or "Bad page" in r["title"]
               for r in bug["reports"]), [r["title"] for r in bug["reports"]]
    clean = json.loads((out / "cells" / CELLS[1] / "cell.json").read_text())
    assert clean["detections"] == 0 and clean["reports"] == []
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert sorted(c.get("name", "") for c in cases) == sorted(f"test_cell[{c}]" for c in CELLS)
    assert (out / "report.html").read_text().count(CELLS[0]) >= 1


@pytest.mark.full
@pytest.mark.timeout(2 * NIGHT_TIMEOUT + 120)
def test_lava_run_and_local_nights_agree_cell_by_cell(
        lava_night: tuple[Path, dict[str, Any]], oomrace_artifacts: Path) -> None:
    out = oomrace_artifacts / "lava" / "local-night"
    if out.exists():
        shutil.rmtree(out)
    local = run_night(out)
    assert verdicts(local) == verdicts(lava_night[1])
    for engine in (local, lava_night[1]):
        assert all(c["outcome"] == "pass" for c in engine["cells"])


@pytest.mark.full
@pytest.mark.timeout(NIGHT_TIMEOUT + 900)
def test_lava_server_night_gives_the_local_engines_verdicts(oomrace_artifacts: Path) -> None:
    """The same two cells through a whole LAVA instance on this machine (lava-server with
    PostgreSQL and gunicorn on 127.0.0.1, the scheduler, one worker, one qemu device, a
    user's token): submitted, followed and fetched with lavacli, as on a real lab."""
    from . import lava_server

    problem = lava_server.missing()
    if problem is not None:
        pytest.skip(problem)
    work = oomrace_artifacts / "lava" / "server"
    out = work / "night"
    if out.exists():
        shutil.rmtree(out)
    with lava_server.instance(work) as lava:
        summary = run_night(out, "--engine", "lava", "--lava-url", lava.url, "--lava-user",
                            lava.user, "--lava-token-file", str(lava.token_file))
    expected = {c.id: c.expected for c in lab.load_matrix(CI_MATRIX).cells if c.id in CELLS}
    assert verdicts(summary) == expected
    token = lava.token_file.read_text().strip()
    for path in [out / "summary.json", *(out / "cells").glob("*/*")]:
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path
    assert token not in (out.parent / f"{out.name}.stdout").read_text()
