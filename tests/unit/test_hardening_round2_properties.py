"""Property tests (hypothesis) of issue 23: `lab merge` of any crafted shard never reads
or writes outside its inputs and --out and fails only in one line; every path-taking
option refuses what is not a regular file in one line, without blocking. Each example
is timed and its memory measured (tracemalloc), and both are asserted."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")  # in the dev extras (pip install -e .[dev])
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness import cli, lab  # noqa: E402
from harness.errors import UsageError  # noqa: E402
from harness.kernel.build import recipes  # noqa: E402

from ._devices import char_device  # noqa: E402

CID = "x86_64-debian-smoke-r0"
SECONDS_PER_EXAMPLE = 10.0
PEAK_BYTES = 64 << 20
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """The block must end within SECONDS_PER_EXAMPLE and allocate at most PEAK_BYTES."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE
    assert peak < PEAK_BYTES, peak


# --- lab merge --------------------------------------------------------------------------------

IDS = st.sampled_from([CID, "..", ".", "../../etc", "a/b", "", "x86_64-other-smoke-r0",
                       "/abs", "-dash", "x" * 300, 3, None])
HOSTILE = st.sampled_from(["abc", "xyz", "x", [1, 2], [], {}, {"a": 1}, -1, 0, 1.5,
                           float("nan"), 1e308, True, None, "../../etc", [0, "x"],
                           [{"title": "t"}], {"x": "y"}])
FIELDS = st.sampled_from(["rate", "reports", "taint", "repro", "ci95", "trials",
                          "detections", "iterations", "seconds", "events", "verdict",
                          "outcome", "reason", "error", "report_titles", "event_counts",
                          "boot_seconds", "started_at", "kernel_description", "cell",
                          "repeat", "expected", "arch", "kernel", "scenario", "paths"])
ENTRY_KINDS = st.sampled_from(["file", "dir", "link-secret", "link-etc", "link-up",
                               "link-self", "fifo"])
ENTRY_NAMES = st.sampled_from(["dmesg.txt", "console.log", "etcdir", "ktap", "sub",
                               "result.json", ".hidden"])


def record(cid: object) -> dict[str, Any]:
    cell = lab.Cell(arch="x86_64", kernel="debian", scenario="smoke")
    data = lab.CellRecord(cell, verdict="clean", outcome="pass").to_dict()
    data["id"] = cid
    return data


@st.composite
def shards(draw: st.DrawFn) -> dict[str, Any]:
    data = record(draw(IDS))
    for _ in range(draw(st.integers(0, 3))):
        data[draw(FIELDS)] = draw(HOSTILE)
    return {"summary_id": draw(IDS), "cell_json": data,
            "cells_link": draw(st.booleans()) and draw(st.booleans()),
            "entries": draw(st.lists(st.tuples(ENTRY_NAMES, ENTRY_KINDS), max_size=5,
                                     unique_by=lambda e: e[0]))}


def _make_entry(folder: Path, name: str, kind: str, outside: Path) -> None:
    path = folder / name
    if kind == "file":
        path.write_text("data\n")
    elif kind == "dir":
        path.mkdir()
        (path / "inner.txt").write_text("inner\n")
        (path / "up").symlink_to(outside / "etc")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        target = {"link-secret": outside / "secret.txt", "link-etc": outside / "etc",
                  "link-up": Path(".."), "link-self": path}[kind]
        path.symlink_to(target)


def _build(root: Path, spec: dict[str, Any], outside: Path) -> Path:
    shard = root / "shard"
    shard.mkdir()
    cid = spec["summary_id"]
    entry = record(cid)
    (shard / "summary.json").write_text(json.dumps(
        {"cells": [entry], "planned": [cid], "matrix_sha256": "x"}, default=str))
    if spec["cells_link"]:
        (shard / "cells").symlink_to(outside)
        return shard
    folder = shard / "cells" / CID
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps(spec["cell_json"], default=str))
    for name, kind in spec["entries"]:
        _make_entry(folder, name, kind, outside)
    return shard


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytest.mark.timeout(600)
@PROPERTY
@given(shards())
def test_lab_merge_of_any_shard_stays_inside_and_fails_in_one_line(
        spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outside = root / "outside"
        (outside / "etc").mkdir(parents=True)
        (outside / "secret.txt").write_text("SECRET\n")
        (outside / "etc" / "shadow").write_text("SHADOW\n")
        before = _tree(outside)
        shard = _build(root, spec, outside)
        out = root / "out"
        with bounded():
            try:
                summary = lab.merge([shard], out)
            except UsageError as e:
                assert "\n" not in str(e)
            else:
                assert [c.id for c in summary.cells] == [spec["summary_id"]]
        assert _tree(outside) == before
        if out.exists():
            assert not any(p.is_symlink() for p in out.rglob("*"))
            content = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
            assert b"SECRET" not in content and b"SHADOW" not in content
        assert sorted(p.name for p in root.iterdir()) in (["outside", "shard"],
                                                          ["out", "outside", "shard"])


# --- the path options ------------------------------------------------------------------------

KINDS = ["missing", "dir", "fifo", "dev-null", "dev-zero", "loop", "dangling", "link-dir",
         "long-name", "long-path", "nul", "regular"]
OPTIONS = {  # argv with PATH for the path; each refuses every kind but "regular" in one line
    "log": ["parse-log", "PATH"],
    "allow-file": ["parse-log", "LOG", "--allow-file", "PATH"],
    "vmlinux": ["parse-log", "LOG", "--vmlinux", "PATH"],
    "repro": ["run", "--repro", "PATH"],
    "kernel": ["run", "--kernel", "PATH"],
    "matrix": ["lab", "PATH", "--list"],
    "json": ["parse-log", "LOG", "--json", "PATH"],
}


def make_path(root: Path, kind: str) -> str:
    path = root / "thing"
    if kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind in ("dev-null", "dev-zero"):
        return str(char_device(root, kind[4:]))
    elif kind == "loop":
        (root / "other").symlink_to(path)
        path.symlink_to(root / "other")
    elif kind == "dangling":
        path.symlink_to(root / "nowhere")
    elif kind == "link-dir":
        path.symlink_to(root)
    elif kind == "long-name":
        return str(root / ("x" * 300))
    elif kind == "long-path":
        return str(root / "/".join(["d" * 200] * 25))
    elif kind == "nul":
        return str(root / "a\0b")
    elif kind == "regular":
        path.write_text("not what any option wants\n")
    return str(path)


@pytest.mark.timeout(600)
@PROPERTY
@given(option=st.sampled_from(sorted(OPTIONS)), kind=st.sampled_from(KINDS))
def test_a_path_option_reads_only_regular_files(option: str, kind: str,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        monkeypatch.setenv("OOMRACE_CACHE", str(root / "cache"))
        monkeypatch.setattr(cli.commands, "run_one", _no_guests)
        log = root / "console.log"
        log.write_text("[    0.000000] Linux version 6.1.0\n")
        path = make_path(root, kind)
        argv = [path if a == "PATH" else str(log) if a == "LOG" else a
                for a in OPTIONS[option]]
        capsys.readouterr()
        with bounded():
            code = cli.main(argv)
        err = capsys.readouterr().err
        # A regular file is read (and its content judged); --json writes a new file, a
        # dangling link's target or a device; everything else is refused.
        wanted = {0, 1, 2} if kind == "regular" else {0, 1} if (option, kind) in {
            ("json", "dev-null"), ("json", "dev-zero"), ("json", "missing"),
            ("json", "dangling")} else {2}
        assert code in wanted, (option, kind, err)
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert len(err) < 1000, err
        if kind == "fifo":
            assert Path(path).is_fifo()  # never replaced by a file


def _no_guests(*args: object, **kwargs: object) -> object:
    raise AssertionError("a path option reached run_one: it should have been refused")


@PROPERTY
@given(st.sampled_from([k for k in KINDS if k != "regular"]))
def test_kconfig_refuses_what_is_not_a_regular_file(kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = make_path(Path(tmp), kind)
        with bounded(), pytest.raises(UsageError) as info:
            recipes.kconfig_change(path)
        assert "\n" not in str(info.value) and "--kconfig" in str(info.value)
