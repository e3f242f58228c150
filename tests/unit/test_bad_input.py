"""Bad input of every kind through `oomrace` in-process: each is exit 2 with one line on
stderr and never a traceback (issue 10). Nothing here boots, builds or downloads: every
probe is refused before that."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import cli
from harness.lab import launch

GOOD_MATRIX = '[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "smoke"\n'
BAD_MATRICES = {
    "not-toml": "[[cell]\n",
    "cell-is-a-list": "cell = [1, 2]\n",
    "cell-is-strings": 'cell = ["x"]\n',
    "no-cells": 'name = "x"\n',
    "unknown-key": GOOD_MATRIX + "colour = 1\n",
    "nan-duration": GOOD_MATRIX + "duration = nan\n",
    "inf-timeout": GOOD_MATRIX + "timeout = inf\n",
    "zero-cpus": GOOD_MATRIX + "cpus = 0\n",
    "bad-arch": GOOD_MATRIX.replace("x86_64", "sparc"),
    "bad-expected": GOOD_MATRIX + 'expected = "maybe"\n',
    "defaults-not-a-table": "defaults = 3\n" + GOOD_MATRIX,
}
BISECT_STATES = {
    "list": "[]",
    "number": "3",
    "empty": "{}",
    "no-config": '{"version": 1}',
    "config-list": '{"version": 1, "config": []}',
    "not-json": "{truncated",
}


def fake_image(path: Path, arch: str) -> Path:
    data = bytearray(0x400)
    if arch == "x86_64":
        data[0x202:0x206] = b"HdrS"
    else:
        data[0x38:0x3C] = b"ARM\x64"
    path.write_bytes(bytes(data))
    return path


def shard(directory: Path, cells: list[dict[str, object]] | None = None,
          raw: str | None = None) -> Path:
    directory.mkdir(parents=True)
    summary = {"cells": cells or [], "planned": [c["id"] for c in cells or []],
               "matrix_sha256": "x"}
    (directory / "summary.json").write_text(raw if raw is not None else json.dumps(summary))
    return directory


def git_repo(path: Path, state: str | None = None) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if state is not None:
        (path / ".git" / "oomrace-bisect.json").write_text(state)
    return path


def probes(t: Path) -> dict[str, list[str]]:
    """name -> argv; files the argv names are made under `t`."""
    (t / "file").write_text("x")
    (t / "dir").mkdir()
    os.mkfifo(t / "fifo")
    (t / "junk.img").write_bytes(b"\0" * 4096)
    (t / "bad.gz").write_bytes(b"\x1f\x8b" + b"\xff" * 100)
    (t / "vmlinux").write_bytes(b"\x7fELF" + b"\0" * 14 + (62).to_bytes(2, "little") + b"\0" * 64)
    (t / "latin1.toml").write_bytes(GOOD_MATRIX.encode() + b'name = "\xe9"\n')
    (t / "good.toml").write_text(GOOD_MATRIX)
    bzimage = str(fake_image(t / "bzImage", "x86_64"))
    arm = str(fake_image(t / "Image", "aarch64"))
    good = str(t / "good.toml")
    repo = str(git_repo(t / "repo"))
    cell = {"id": "x86_64-debian-smoke-r0", "verdict": "clean", "outcome": "pass"}
    found: dict[str, list[str]] = {
        "no-command": [],
        "unknown-command": ["frobnicate"],
        "run-unknown-option": ["run", "--frobnicate"],
        "run-arch-unknown": ["run", "--arch", "sparc"],
        "run-arch-empty": ["run", "--arch", ""],
        "run-arch-commas": ["run", "--arch", ","],
        "run-cpus-0": ["run", "--cpus", "0"],
        "run-cpus-text": ["run", "--cpus", "many"],
        "run-memory-small": ["run", "--memory", "12"],
        "run-memory-negative": ["run", "--memory", "-5"],
        "run-duration-nan": ["run", "--duration", "nan"],
        "run-duration-inf": ["run", "--duration", "inf"],
        "run-duration-negative": ["run", "--duration", "-1"],
        "run-duration-zero": ["run", "--duration", "0"],
        "run-boot-timeout-nan": ["run", "--boot-timeout", "NaN"],
        "run-boot-timeout-huge": ["run", "--boot-timeout", "1e999"],
        "run-accel": ["run", "--accel", "xen"],
        "run-scenario": ["run", "--scenario", "nope"],
        "run-iterations-negative": ["run", "--scenario", "mrelease", "--iterations", "-1"],
        "run-iterations-float": ["run", "--iterations", "1.5"],
        "run-seed-text": ["run", "--seed", "abc"],
        "run-kernel-unknown": ["run", "--kernel", "no-such-recipe"],
        "run-kernel-missing": ["run", "--kernel", str(t / "missing" / "bzImage")],
        "run-kernel-dir": ["run", "--kernel", str(t / "dir")],
        "run-kernel-junk": ["run", "--kernel", str(t / "junk.img")],
        "run-kernel-bad-gzip": ["run", "--arch", "aarch64", "--kernel", str(t / "bad.gz")],
        "run-kernel-elf": ["run", "--kernel", str(t / "vmlinux")],
        "run-kernel-wrong-arch": ["run", "--arch", "x86_64", "--kernel", arm],
        "run-artifacts-under-file": ["run", "--kernel", bzimage, "--artifacts",
                                     str(t / "file" / "sub")],
        "boot-arch": ["boot", "--arch", "sparc"],
        "boot-cpus": ["boot", "--cpus", "0"],
        "doctor-arch": ["doctor", "--arch", "sparc"],
        "parse-log-no-file": ["parse-log"],
        "parse-log-missing": ["parse-log", str(t / "missing.log")],
        "parse-log-dir": ["parse-log", str(t / "dir")],
        "parse-log-fifo": ["parse-log", str(t / "fifo")],
        "parse-log-dev-zero": ["parse-log", "/dev/zero"],
        "kernel-no-command": ["kernel"],
        "kernel-unknown-command": ["kernel", "frob"],
        "kernel-build-no-recipe": ["kernel", "build"],
        "kernel-build-unknown-recipe": ["kernel", "build", "--recipe", "nope"],
        "kernel-build-arch": ["kernel", "build", "--recipe", "v6.1", "--arch", "sparc"],
        "kernel-build-option": ["kernel", "build", "--frobnicate"],
        "bisect-no-repo": ["bisect"],
        "bisect-resume-missing-repo": ["bisect", "--repo", str(t / "missing"), "--resume"],
        "bisect-resume-nothing": ["bisect", "--repo", repo, "--resume"],
        "bisect-no-ends": ["bisect", "--repo", repo],
        "bisect-arch": ["bisect", "--repo", repo, "--good", "a", "--bad", "b", "--arch", "sparc"],
        "bisect-arch-all": ["bisect", "--repo", repo, "--good", "a", "--bad", "b",
                            "--arch", "all"],
        "bisect-scenario": ["bisect", "--repo", repo, "--good", "a", "--bad", "b",
                            "--arch", "x86_64", "--scenario", "nope"],
        "bisect-recipe": ["bisect", "--repo", repo, "--good", "a", "--bad", "b",
                          "--arch", "x86_64", "--recipe-config", "nope"],
        "bisect-confidence-nan": ["bisect", "--repo", repo, "--good", "a", "--bad", "b",
                                  "--arch", "x86_64", "--confidence", "nan"],
        "bisect-repo-not-git": ["bisect", "--repo", str(t / "dir"), "--good", "a", "--bad",
                                "b", "--arch", "x86_64"],
        "lab-nothing": ["lab"],
        "lab-missing-matrix": ["lab", str(t / "missing.toml"), "--list"],
        "lab-matrix-dir": ["lab", str(t / "dir"), "--list"],
        "lab-matrix-not-utf8": ["lab", str(t / "latin1.toml"), "--list"],
        "lab-two-matrices": ["lab", good, good],
        "lab-shard-zero": ["lab", good, "--shard", "0/2", "--list"],
        "lab-shard-text": ["lab", good, "--shard", "half", "--list"],
        "lab-no-out": ["lab", good],
        "lab-out-file": ["lab", good, "--out", str(t / "file")],
        "lab-jobs-zero": ["lab", good, "--out", str(t / "night"), "-j", "0"],
        "lab-compare-missing": ["lab", "merge", str(shard(t / "s-ok", [cell])), "--out",
                                str(t / "m1"), "--compare", str(t / "missing")],
        "lab-merge-no-out": ["lab", "merge", str(t / "s-ok")],
        "lab-merge-no-dirs": ["lab", "merge", "--out", str(t / "m2")],
        "lab-merge-missing": ["lab", "merge", str(t / "missing"), "--out", str(t / "m3")],
        "lab-merge-shard-option": ["lab", "merge", str(t / "s-ok"), "--out", str(t / "m4"),
                                   "--shard", "1/2"],
        "lab-merge-hostile-id": ["lab", "merge", str(shard(t / "s-id", [{
            **cell, "id": "../../victim"}])), "--out", str(t / "m5")],
        "lab-merge-missing-key": ["lab", "merge", str(shard(t / "s-key", [{
            "id": "x86_64-debian-smoke-r0"}])), "--out", str(t / "m6")],
        "lab-merge-summary-list": ["lab", "merge", str(shard(t / "s-list", raw="[]")),
                                   "--out", str(t / "m7")],
        "lab-merge-summary-junk": ["lab", "merge", str(shard(t / "s-junk", raw="{no")),
                                   "--out", str(t / "m8")],
        "lab-merge-out-file": ["lab", "merge", str(t / "s-ok"), "--out", str(t / "file")],
    }
    found.update(round_two_probes(t, good, repo))
    for name, text in BAD_MATRICES.items():
        path = t / f"{name}.toml"
        path.write_text(text)
        found[f"lab-matrix-{name}"] = ["lab", str(path), "--list"]
    for name, text in BISECT_STATES.items():
        repo_with_state = git_repo(t / f"state-{name}", text)
        found[f"bisect-state-{name}"] = ["bisect", "--repo", str(repo_with_state), "--resume"]
    return found


def round_two_probes(t: Path, good: str, repo: str) -> dict[str, list[str]]:
    """Issue 23's cases that are one command each (the files they name made under `t`)."""
    fifo, folder = str(t / "fifo"), str(t / "dir")
    (t / "loop-a.c").symlink_to(t / "loop-b.c")
    (t / "loop-b.c").symlink_to(t / "loop-a.c")
    (t / "unrelated").mkdir()
    (t / "unrelated" / "report.html").write_text("mine")
    log = str(t / "file")
    merged = t / "s-r2"
    found = {
        "parse-log-allow-file-fifo": ["parse-log", log, "--allow-file", fifo],
        "parse-log-vmlinux-fifo": ["parse-log", log, "--vmlinux", fifo],
        "parse-log-vmlinux-dir": ["parse-log", log, "--vmlinux", folder],
        "parse-log-json-dir": ["parse-log", log, "--json", folder],
        "parse-log-json-fifo": ["parse-log", log, "--json", fifo],
        "parse-log-json-missing-folder": ["parse-log", log, "--json",
                                          str(t / "no" / "such" / "x.json")],
        "run-repro-fifo": ["run", "--repro", fifo],
        "run-repro-dev-zero": ["run", "--repro", "/dev/zero"],
        "run-repro-dir": ["run", "--repro", folder],
        "run-repro-symlink-loop": ["run", "--repro", str(t / "loop-a.c")],
        "run-kernel-5000-chars": ["run", "--kernel", "k" * 5000],
        "run-kernel-5000-chars-path": ["run", "--kernel", "d/" + "k" * 5000],
        "run-kconfig-fifo": ["run", "--kernel", "v6.1", "--kconfig", fifo],
        "kernel-build-patch-fifo": ["kernel", "build", "--recipe", "v6.1", "--patch", fifo],
        "lab-matrix-fifo": ["lab", fifo, "--list"],
        "lab-shard-5000-digits": ["lab", good, "--shard", "1/" + "9" * 5000, "--list"],
        "lab-out-unrelated-folder": ["lab", good, "--out", str(t / "unrelated")],
        "cache-prune-max-size-huge": ["cache", "prune", "--max-size", "1e308"],
        "lab-compare-fifo": ["lab", "merge", str(t / "s-ok"), "--out", str(t / "m-cmp"),
                             "--compare", fifo],
        "lab-lava-token-file-fifo": ["lab", good, "--out", str(t / "m-lava"), "--engine",
                                     "lava", "--lava-url", "https://lava.example",
                                     "--lava-user", "u", "--lava-token-file", fifo],
        "bisect-confidence-tiny": ["bisect", "--repo", repo, "--good", "a", "--bad", "b",
                                   "--arch", "x86_64", "--confidence", "1e-300"],
        "bisect-confidence-one": ["bisect", "--repo", repo, "--good", "a", "--bad", "b",
                                  "--arch", "x86_64", "--confidence", "1"],
    }
    for field, value in (("rate", "abc"), ("reports", "xyz"), ("taint", "x"),
                         ("repro", [1, 2])):
        cell = {"id": "x86_64-debian-smoke-r0", "arch": "x86_64", "kernel": "debian",
                "scenario": "smoke", "repeat": 0, "expected": "clean", "verdict": "clean",
                "outcome": "pass", "paths": {"console": "c", "dmesg": "d"}, field: value}
        directory = shard(merged / field, [cell])
        (directory / "cells" / cell["id"]).mkdir(parents=True)
        (directory / "cells" / cell["id"] / "cell.json").write_text(json.dumps(cell))
        found[f"lab-merge-cell-json-{field}"] = ["lab", "merge", str(directory), "--out",
                                                 str(t / f"m-{field}")]
    linked = t / "m-linked"
    linked.mkdir()
    (linked / ".oomrace-night").write_text("")
    (linked / "cells").symlink_to(t / "dir")
    found["lab-merge-cells-folder-link"] = ["lab", "merge", str(merged / "rate"), "--out",
                                            str(linked)]
    return found


def _names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return sorted(probes(Path(tmp)))


@pytest.fixture(scope="module")
def probe_argv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    return probes(tmp_path_factory.mktemp("probes"))


def test_there_are_at_least_40_probes() -> None:
    names = _names()
    assert len(names) >= 40
    assert {"run-repro-dev-zero", "lab-shard-5000-digits", "lab-merge-cell-json-taint"} <= \
        set(names)  # issue 23's probes are among them


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", _names())
def test_bad_input_is_exit_2_with_one_line(name: str, probe_argv: dict[str, list[str]],
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))
    guard: Callable[..., object] = _no_guests
    monkeypatch.setattr(cli.commands, "run_one", guard)
    monkeypatch.setattr(launch, "prepare", guard)  # nor a night's builds and guests
    code = cli.main(probe_argv[name])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err)
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert "error" in lines[0] or "oomrace" in lines[0]


def _no_guests(*args: object, **kwargs: object) -> object:
    raise AssertionError("a probe reached run_one: it should have been refused before")
