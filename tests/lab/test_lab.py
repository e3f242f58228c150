"""The nightly lab end to end: `oomrace lab` on configs/ci-matrix.toml (both arches,
Debian's kernel and the bug-injected recipe, mrelease and madvise) with -n 2, compared
with a fabricated previous night; its report opened in headless Chromium; shards merged
into the same night an unsharded run gives."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from harness import ktap, lab
from harness.verdict import wilson_interval

from ..conftest import qemu_processes_with

REPO = Path(__file__).resolve().parents[2]
CI_MATRIX = REPO / "configs" / "ci-matrix.toml"
BUG_CELL = "aarch64-v6.1-reaper-fullmm-mrelease-r0"
NIGHT_TIMEOUT = 900  # the CI matrix takes about 4-5 minutes with -n 2 on 2 cores
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def oomrace(*argv: str, timeout: float = NIGHT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=timeout, check=False)


def fake_previous_night(history: Path) -> dict[str, Any]:
    """A night before this one: every cell as expected, but the bug reproduced in only 2 of
    200 batches, so tonight's rate (one or two of two batches) is a rate shift by Fisher's
    exact test (p <= 0.03, the only cell with detections): a regression."""
    records = []
    for cell in lab.load_matrix(CI_MATRIX).cells:
        detections, trials = (2, 200) if cell.id == BUG_CELL else (0, 10)
        low, high = wilson_interval(detections, trials)
        records.append(lab.CellRecord(
            cell=cell, verdict=cell.expected, reason="fabricated", outcome="pass",
            trials=trials, detections=detections, rate=detections / trials,
            ci95=(low, high), iterations=trials * 25, seconds=60.0))
    ids = [r.id for r in records]
    summary = lab.make_summary(records, ids, name="ci", matrix=str(CI_MATRIX),
                               matrix_sha256="fabricated", started_at="2024-01-01T03:00:00+00:00",
                               seconds=300, night="2024-01-01-fabricated")
    summary = replace(summary, finished_at="2024-01-01T03:05:00+00:00")
    night = history / "2024-01-01-fabricated"
    night.mkdir(parents=True)
    (night / "summary.json").write_text(json.dumps(summary.to_dict()))
    return summary.to_dict()


@dataclass
class Night:
    out: Path
    proc: subprocess.CompletedProcess[str]
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def lab_dir(oomrace_artifacts: Path) -> Path:
    path = oomrace_artifacts / "lab"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def ci_night(lab_dir: Path) -> Iterator[Night]:
    history = lab_dir / "history"
    fake_previous_night(history)
    out = history / "ci-night"
    proc = oomrace("lab", str(CI_MATRIX), "--out", str(out), "-n", "2",
                   "--history", str(history))
    (lab_dir / "ci-night.stdout").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert (out / "summary.json").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    yield Night(out, proc, json.loads((out / "summary.json").read_text()))
    assert qemu_processes_with(str(out)) == []


@pytest.mark.timeout(NIGHT_TIMEOUT + 120)
def test_ci_matrix_night_end_to_end(ci_night: Night) -> None:
    proc, summary, out = ci_night.proc, ci_night.summary, ci_night.out
    log = proc.stdout[-4000:] + proc.stderr[-2000:]
    cells = {c["id"]: c for c in summary["cells"]}
    expected = {c.id: c.expected for c in lab.load_matrix(CI_MATRIX).cells}
    assert set(cells) == set(expected), log
    assert {cid: c["verdict"] for cid, c in cells.items()} == expected, log
    assert summary["totals"]["passed"] == 8 and summary["totals"]["failed"] == 0
    bug = cells[BUG_CELL]
    assert bug["detections"] >= 1 and bug["trials"] >= 1 and bug["ci95"][0] > 0
    assert any("memory corruption" in t for t in bug["report_titles"]), bug
    for cid, c in cells.items():
        assert c["iterations"] > 0, cid  # every cell here is a stress scenario
        for key in ("console", "dmesg", "result", "record", "ktap"):
            assert (out / c["paths"][key]).is_file(), (cid, key)
        (as_ktap,) = ktap.parse((out / c["paths"]["ktap"]).read_text()).tests
        ran = [t for t in as_ktap.subtests if t.result is not ktap.Result.SKIP]
        assert (as_ktap.name, as_ktap.ok, len(ran)) == (cid, True, c["trials"]), cid
        repro = c["repro"]
        assert repro["qemu"]["version"].startswith("QEMU") and repro["qemu"]["argv"]
        assert repro["kernel"]["config_sha256"] and repro["kernel"]["source_identity"]
        assert repro["workload"]["seed"] is not None and repro["host"]["hostname"]
    assert cells[BUG_CELL]["repro"]["kernel"]["patches"] == [
        "0001-oom_reaper-gather-whole-mm-with-fullmm.patch"]
    full = json.loads((out / bug["paths"]["record"]).read_text())
    assert full["reports"] and full["events"]
    # The fabricated previous night reproduced in 1% of batches: a rate shift, exit 3.
    regressions = {r["id"]: r["kind"] for r in summary["comparison"]["regressions"]}
    assert regressions == {BUG_CELL: "rate-shift"}, summary["comparison"]
    assert proc.returncode == 3, log
    assert "REGRESSION " + BUG_CELL in proc.stdout
    # Progress: a line per finished cell.
    assert proc.stdout.count("[lab ") >= 8 and "[lab 8/8 done, 0 running, 0 left" in proc.stdout
    # JUnit: ours and pytest's, one testcase per cell with the figures as properties.
    for name in ("junit.xml", "pytest-junit.xml"):
        root = ET.parse(out / name).getroot()
        cases = root.findall(".//testcase")
        assert sorted(c.get("name") or "" for c in cases) == sorted(
            f"test_cell[{cid}]" for cid in expected), name
        assert not root.findall(".//failure") and not root.findall(".//error"), name
        for case in cases:
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            cid = (case.get("name") or "")[len("test_cell["):-1]
            assert props["verdict"] == expected[cid], (name, cid)
            assert int(props["trials"]) >= 1 and props["rate"] and props["ci95_high"]
            assert props["detections"] == str(cells[cid]["detections"])


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the pixel data has (a blank page
    has very few)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.timeout(NIGHT_TIMEOUT + 300)
def test_report_renders_in_headless_chromium(ci_night: Night, lab_dir: Path,
                                             tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install chromium (./bootstrap does)")
    report = ci_night.out / "report.html"
    url = report.resolve().as_uri()
    screenshot = lab_dir / "report.png"
    base = [chromium, *CHROMIUM_FLAGS, "--window-size=1280,900"]
    shot = subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile-1'}",
                           f"--screenshot={screenshot}", url],
                          capture_output=True, text=True, timeout=180, check=False)
    assert screenshot.is_file(), shot.stderr[-2000:]
    width, height, colours = png_size_and_colours(screenshot)
    assert (width, height) == (1280, 900)
    assert colours > 50 and screenshot.stat().st_size > 20_000
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile-2'}", "--dump-dom",
                          url], capture_output=True, text=True, timeout=180, check=False)
    (lab_dir / "report.dom.html").write_text(dom.stdout)
    text = dom.stdout
    assert text.count('<tr class="cell pass"') == 8, dom.stderr[-2000:]
    assert f'id="cell-{BUG_CELL}"' in text
    assert text.count('<svg class="plot"') == 8
    assert text.count("<circle") >= 16  # the fabricated night and this one, per cell
    assert 'class="point current"' in text and "<polyline" in text
    assert 'class="tag regression"' in text


TINY = """\
name = "tiny"
[defaults]
arch = "x86_64"
scenario = "smoke"
cpus = 2
memory = 512
boot_timeout = 240
[[cell]]
kernel = ["debian", "v4.14.2"]
"""


@pytest.mark.timeout(900)
def test_two_shards_merged_equal_the_unsharded_night(lab_dir: Path) -> None:
    work = lab_dir / "shards"
    work.mkdir()
    matrix = work / "tiny.toml"
    matrix.write_text(TINY)
    runs = {"whole": ["-n", "2"], "s1": ["--shard", "1/2", "-n", "1"],
            "s2": ["--shard", "2/2", "-n", "1"]}
    with ThreadPoolExecutor(len(runs)) as pool:  # the three runs at once: 4 small guests
        futures = {name: pool.submit(oomrace, "lab", str(matrix), "--out", str(work / name),
                                     *argv, timeout=600) for name, argv in runs.items()}
        procs = {name: f.result() for name, f in futures.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.stdout[-3000:], proc.stderr[-3000:])
    parts = [json.loads((work / s / "summary.json").read_text()) for s in ("s1", "s2")]
    assert [len(p["cells"]) for p in parts] == [1, 1]
    merged_proc = oomrace("lab", "merge", str(work / "s1"), str(work / "s2"), "--out",
                          str(work / "merged"), timeout=120)
    assert merged_proc.returncode == 0, merged_proc.stdout + merged_proc.stderr
    merged = json.loads((work / "merged" / "summary.json").read_text())
    whole = json.loads((work / "whole" / "summary.json").read_text())

    def essence(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(c["id"], c["verdict"], c["outcome"], c["expected"]) for c in summary["cells"]]

    assert essence(merged) == essence(whole)
    assert [c["id"] for c in whole["cells"]] == ["x86_64-debian-smoke-r0",
                                                 "x86_64-v4.14.2-smoke-r0"]
    assert merged["planned"] == whole["planned"] and merged["totals"] == whole["totals"]
    for cell in merged["cells"]:
        assert (work / "merged" / cell["paths"]["console"]).is_file()
    cases = ET.parse(work / "merged" / "junit.xml").getroot().findall(".//testcase")
    assert sorted(c.get("name") or "" for c in cases) == sorted(
        f"test_cell[{c['id']}]" for c in whole["cells"])
