"""Issue 23 (hardening, round two): each finding of items 1, 2, 4 (FIFOs), 7, 8 and 10 as
a test that failed before its fix. Nothing here boots or builds a kernel."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import atomicio, cli, lab, repro, symbolize
from harness.arches import get_arch
from harness.bisect.state import STATE_NAME, BisectConfig, BisectState, Phase
from harness.errors import UsageError
from harness.kernel_log import gate
from harness.lab import launch, night

from ..conftest import REPO
from ._devices import char_device

LOG = "[    1.000000] WARNING: CPU: 0 PID: 1 at mm/foo.c:10 foo+0x10/0x20\n"
CLEAN_LOG = "[    0.000000] Linux version 6.1.0\n"
CID = "x86_64-debian-smoke-r0"


def one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                    *words: str) -> str:
    """Run `oomrace argv`; it must be exit 2 with one line on stderr holding `words`."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "console.log"
    path.write_text(CLEAN_LOG)
    return path


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))


# --- 1: --json FILE is written as what it is ----------------------------------------------


def test_json_to_dev_full_leaves_the_device_and_is_one_line(
        capsys: pytest.CaptureFixture[str], log_file: Path, tmp_path: Path) -> None:
    full = char_device(tmp_path, "full")
    one_line_exit_2(capsys, ["parse-log", str(log_file), "--json", str(full)],
                    f"--json {full}", "No space left")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_json_to_dev_null_is_written_in_place(capsys: pytest.CaptureFixture[str],
                                              log_file: Path, tmp_path: Path) -> None:
    null = char_device(tmp_path, "null")
    assert cli.main(["parse-log", str(log_file), "--json", str(null)]) == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_json_to_a_fifo_is_refused_and_the_fifo_kept(capsys: pytest.CaptureFixture[str],
                                                     log_file: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line_exit_2(capsys, ["parse-log", str(log_file), "--json", str(fifo)], "a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_json_to_a_symlink_writes_its_target_and_keeps_the_link(log_file: Path,
                                                                tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert cli.main(["parse-log", str(log_file), "--json", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["reports"] == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_json_to_a_directory_creates_nothing_beside_it(capsys: pytest.CaptureFixture[str],
                                                       log_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    before = sorted(tmp_path.iterdir())
    one_line_exit_2(capsys, ["parse-log", str(log_file), "--json", str(folder)],
                    "a directory")
    assert sorted(tmp_path.iterdir()) == before and not list(folder.iterdir())


def test_json_keeps_the_mode_of_the_file_it_replaces(log_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "gate.json"
    out.write_text("{}")
    out.chmod(0o600)
    assert cli.main(["parse-log", str(log_file), "--json", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "reports" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_json_into_a_missing_folder_is_one_line(capsys: pytest.CaptureFixture[str],
                                                log_file: Path, tmp_path: Path) -> None:
    one_line_exit_2(capsys, ["parse-log", str(log_file), "--json",
                             str(tmp_path / "no" / "dir" / "x.json")], "does not exist")


def test_write_output_temp_file_is_made_in_the_targets_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & os.O_CREAT:
            made.append(str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    atomicio.write_output(tmp_path / "x.json", "{}\n")
    assert made and all(Path(m).parent == tmp_path for m in made)


def test_json_to_dev_stdout_follows_what_was_printed(log_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stdout.txt"
    with out.open("w") as f:
        done = subprocess.run([sys.executable, "-m", "harness", "parse-log", str(log_file),
                               "--json", "/dev/stdout"], cwd=REPO, stdout=f,
                              stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    summary, _, payload = text.partition("\n{")
    assert "no crash found" in summary and json.loads("{" + payload)["reports"] == []


# --- 8: stdout on /dev/full -----------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_stdout_on_dev_full_is_one_line_exit_2(log_file: Path, extra: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "harness", "parse-log", str(log_file),
                               *extra], cwd=REPO, stdout=full, stderr=subprocess.PIPE,
                              text=True, check=False, timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "stdout" in done.stderr, done.stderr


# --- 4 and 10: input files that are not regular files ----------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("option", ["--allow-file", "--vmlinux"])
def test_parse_log_input_option_on_a_fifo_is_refused_not_blocked(
        capsys: pytest.CaptureFixture[str], log_file: Path, tmp_path: Path,
        option: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line_exit_2(capsys, ["parse-log", str(log_file), option, str(fifo)], option, "FIFO")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind,word", [("fifo", "a FIFO"), ("zero", "a device"),
                                       ("dir", "a directory"), ("loop", "loop")])
def test_repro_that_is_not_a_file_says_what_it_is(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, kind: str,
                                                  word: str) -> None:
    path = {"fifo": tmp_path / "bug.c", "zero": char_device(tmp_path, "zero"), "dir": tmp_path,
            "loop": tmp_path / "loop.c"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "loop":
        (tmp_path / "other.c").symlink_to(path)
        path.symlink_to(tmp_path / "other.c")
    err = one_line_exit_2(capsys, ["run", "--repro", str(path)], "--repro", word)
    assert "no such file" not in err


def test_allow_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    allow = tmp_path / "known.txt"
    allow.write_bytes(b"\xef\xbb\xbfWARNING in foo\nother\n")
    patterns = gate.read_allow_file(allow)
    assert [p.text for p in patterns] == ["WARNING in foo", "other"]
    assert patterns[0].regex.search("WARNING in foo") is not None


def test_vmlinux_named_like_an_option_reaches_nm_as_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    elf = b"\x7fELF" + b"\0" * 14 + (62).to_bytes(2, "little") + b"\0" * 64
    Path("--version").write_bytes(elf)
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kw: Any) -> Any:
        seen.append(list(argv))
        raise UsageError("stop here")

    monkeypatch.setattr(symbolize, "run", fake_run)
    symbolizer = symbolize.symbolizer_for(Path("--version"))
    with pytest.raises(UsageError):
        symbolizer._nm()
    argv = seen[0]
    assert argv[-2] == "--" and argv[-1] == str(tmp_path / "--version")


# --- 8: the exit-70 cases ---------------------------------------------------------------------


def test_cache_prune_with_a_huge_max_size(capsys: pytest.CaptureFixture[str]) -> None:
    one_line_exit_2(capsys, ["cache", "prune", "--max-size", "1e308"], "--max-size")


def test_cache_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\n")
    monkeypatch.setenv("OOMRACE_CACHE", str(passwd))
    one_line_exit_2(capsys, ["cache"], "not a folder", "OOMRACE_CACHE")
    assert passwd.read_text().startswith("root:")


@pytest.mark.parametrize("prefix", ["", "a/"])
def test_a_5000_character_kernel(capsys: pytest.CaptureFixture[str], prefix: str) -> None:
    err = one_line_exit_2(capsys, ["run", "--kernel", prefix + "x" * 5000])
    assert len(err) < 1000  # the path is shortened in the message


def test_shard_with_thousands_of_digits(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    matrix = tmp_path / "m.toml"
    matrix.write_text('[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "smoke"\n')
    one_line_exit_2(capsys, ["lab", str(matrix), "--shard", "1/" + "9" * 5000, "--list"],
                    "--shard")


def _finished_state(repo: Path, result: dict[str, Any]) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    config = BisectConfig(repo=repo, good="a", bad="b", arch="x86_64")
    # A finished state as a file holds it, with the result a damaged file would have.
    state = BisectState(config=config, good_sha="a" * 40, bad_sha="b" * 40,
                        commits_in_range=3, started_at="now", phase=Phase.DONE).to_dict()
    state["result"] = result
    (repo / ".git" / STATE_NAME).write_text(json.dumps(state))


@pytest.mark.parametrize("result", [
    {"commit": "b" * 40, "subject": "x", "candidates": []},  # no confidence
    {"commit": "b" * 40, "confidence": "high", "confidence_point_estimate": 0.9},
    ["not", "an", "object"],
])
def test_resume_of_a_finished_state_without_its_confidence(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, result: Any) -> None:
    _finished_state(tmp_path / "repo", result)
    one_line_exit_2(capsys, ["bisect", "--repo", str(tmp_path / "repo"), "--resume"],
                    "bisect state")


@pytest.mark.parametrize("value", ["1e-300", "0", "1", "0.3", "nan", "0.999999"])
def test_bisect_confidence_out_of_range(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        value: str) -> None:
    one_line_exit_2(capsys, ["bisect", "--repo", str(tmp_path), "--good", "a", "--bad", "b",
                             "--arch", "x86_64", "--confidence", value], "--confidence")


# --- 10: a reproducer's compiler is bounded --------------------------------------------------


@pytest.mark.timeout(120)
def test_a_reproducer_including_dev_zero_is_stopped_by_the_compilers_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import proc

    # A lower ceiling than the real one (4 GiB) keeps this cheap; the mechanism is the same.
    monkeypatch.setattr(repro, "COMPILE_LIMITS", proc.Limits(256 << 20, 60))
    source = tmp_path / "zero.c"
    source.write_text('#include "/dev/zero"\nint main(void) { return 0; }\n')
    started = time.monotonic()
    with pytest.raises(UsageError, match="does not compile") as info:
        repro.Reproducer(source=source).initrd_part(get_arch("x86_64"))
    assert time.monotonic() - started < 60 and "\n" not in str(info.value)
    assert "256 MiB" in str(info.value)


def test_command_limits_are_set_in_the_child() -> None:
    from harness import proc

    done = proc.run(["sh", "-c", "ulimit -v; ulimit -t"], limits=proc.Limits(1 << 30, 77))
    assert done.stdout.split() == [str((1 << 30) // 1024), "77"]


# --- 10: two images of one file name in a matrix -------------------------------------------


def test_two_images_with_the_same_file_name_are_two_cells(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "bzImage").write_bytes(b"x")
    text = ('[[cell]]\narch = "x86_64"\nkernel = ["a/bzImage", "b/bzImage"]\n'
            'scenario = "smoke"\n[[cell]]\narch = "x86_64"\nkernel = "debian"\n'
            'scenario = "smoke"\n')
    cells = lab.parse_matrix(text, tmp_path / "m.toml", recipes=[]).cells
    assert sorted(c.id for c in cells) == ["x86_64-a_bzImage-smoke-r0",
                                           "x86_64-b_bzImage-smoke-r0", CID]
    assert {c.kernel for c in cells} == {"debian", str(tmp_path / "a" / "bzImage"),
                                         str(tmp_path / "b" / "bzImage")}
    # The label survives the record's round trip (a merge reads it back).
    record = lab.CellRecord(cells[0], verdict="clean", outcome="pass")
    assert lab.CellRecord.from_dict(record.to_dict(), "x").id == cells[0].id


def test_an_image_with_a_file_name_of_its_own_keeps_its_label(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bzImage").write_bytes(b"x")
    text = '[[cell]]\narch = "x86_64"\nkernel = "a/bzImage"\nscenario = "smoke"\n'
    assert [c.id for c in lab.parse_matrix(text, tmp_path / "m.toml", recipes=[]).cells] == [
        "x86_64-bzImage-smoke-r0"]


# --- 7: lab --out -----------------------------------------------------------------------------


def test_lab_out_refuses_an_unrelated_folder(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def no_night(*args: object) -> None:
        raise AssertionError("a night started in an unrelated folder")

    monkeypatch.setattr(launch, "prepare", no_night)
    matrix = tmp_path / "m.toml"
    matrix.write_text('[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "smoke"\n')
    site = tmp_path / "site"
    site.mkdir()
    for name in ("report.html", "summary.json", "plan.json"):
        (site / name).write_text("mine")
    one_line_exit_2(capsys, ["lab", str(matrix), "--out", str(site)], "not an oomrace night")
    assert all((site / n).read_text() == "mine"
               for n in ("report.html", "summary.json", "plan.json"))
    assert not (site / night.NIGHT_MARKER).exists()


def test_lab_out_refuses_the_root() -> None:
    # make_out_dir itself, not `lab --out /`: a regression must not write a night into /.
    with pytest.raises(UsageError, match="--out /: an existing folder"):
        night.make_out_dir(Path("/"))
    assert not Path("/" + night.NIGHT_MARKER).exists()


def test_lab_out_takes_a_new_an_empty_or_an_earlier_night(tmp_path: Path) -> None:
    new = night.make_out_dir(tmp_path / "new" / "night")
    assert (new / night.NIGHT_MARKER).is_file()
    assert night.make_out_dir(new) == new  # again: it is one of ours now
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (night.make_out_dir(empty) / night.NIGHT_MARKER).is_file()
    older = tmp_path / "older"  # a night from before the marker
    older.mkdir()
    (older / "summary.json").write_text(json.dumps({"kind": night.KIND, "cells": []}))
    assert (night.make_out_dir(older) / night.NIGHT_MARKER).is_file()


# --- 2 and 8: lab merge of a crafted shard --------------------------------------------------


def record_json(cid: str = CID, **changes: Any) -> dict[str, Any]:
    cell = lab.Cell(arch="x86_64", kernel="debian", scenario="smoke")
    data = lab.CellRecord(cell, verdict="clean", outcome="pass").to_dict()
    data.update(id=cid, **changes)
    return data


def crafted_shard(root: Path, cell_json: dict[str, Any] | None = None,
                  summary_id: str = CID) -> Path:
    """A shard whose one cell folder is `cells/<CID>` holding cell.json, console.log and
    whatever the test adds."""
    shard = root / "shard"
    folder = shard / "cells" / CID
    folder.mkdir(parents=True)
    (folder / "console.log").write_text("console\n")
    (folder / "cell.json").write_text(json.dumps(cell_json or record_json()))
    entry = record_json(summary_id)
    (shard / "summary.json").write_text(json.dumps(
        {"cells": [entry], "planned": [summary_id], "matrix_sha256": "x"}))
    return shard


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """What a shard must never reach: a secret file and an /etc-like folder."""
    folder = tmp_path / "outside"
    (folder / "etc").mkdir(parents=True)
    (folder / "secret.txt").write_text("SECRET-BYTES\n")
    (folder / "etc" / "shadow").write_text("SHADOW-BYTES\n")
    return folder


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def test_lab_merge_follows_no_link_out_of_the_shard(tmp_path: Path, outside: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shard = crafted_shard(tmp_path)
    folder = shard / "cells" / CID
    (folder / "dmesg.txt").symlink_to(outside / "secret.txt")
    (folder / "etcdir").symlink_to(outside / "etc")
    (folder / "logs").mkdir()
    (folder / "logs" / "deep").symlink_to(outside / "etc" / "shadow")
    before = _tree(outside)
    opened: list[tuple[str, int]] = []

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            opened.append((os.fsdecode(args[0]), int(args[2]) if len(args) > 2 else 0))

    sys.addaudithook(hook)  # an audit hook stays: it only records while the merge runs
    out = tmp_path / "merged"
    try:
        summary = lab.merge([shard], out)
    finally:
        seen, opened[:] = list(opened), []
    assert [c.id for c in summary.cells] == [CID]
    copied = out / "cells" / CID
    assert (copied / "console.log").read_text() == "console\n"
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert {p.name for p in copied.iterdir()} == {"console.log", "cell.json", "logs"}
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"SECRET" not in everything and b"SHADOW" not in everything
    assert _tree(outside) == before
    # Nothing outside was opened: no file of it by name, and every link name only with
    # O_NOFOLLOW (which refuses a link instead of opening its target).
    names = {Path(name).name for name, _ in seen}
    assert not names & {"secret.txt", "shadow", "etc"}
    for name, flags in seen:
        if Path(name).name in ("dmesg.txt", "etcdir", "deep"):
            assert flags & os.O_NOFOLLOW, name


def test_lab_merge_refuses_a_cells_folder_that_is_a_link(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, outside: Path) -> None:
    shard = crafted_shard(tmp_path)
    out = tmp_path / "merged"
    out.mkdir()
    (out / night.NIGHT_MARKER).write_text("")
    (out / "cells").symlink_to(outside)
    before = _tree(outside)
    one_line_exit_2(capsys, ["lab", "merge", str(shard), "--out", str(out)],
                    "cells folder is a symbolic link")
    assert _tree(outside) == before


@pytest.mark.parametrize("cid", ["../../../../etc", "..", "a/b", "x86_64-other-smoke-r0"])
def test_lab_merge_checks_the_id_inside_cell_json(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, cid: str) -> None:
    shard = crafted_shard(tmp_path, record_json(cid))
    out = tmp_path / "merged"
    one_line_exit_2(capsys, ["lab", "merge", str(shard), "--out", str(out)], "cell.json")
    assert not (out / "summary.json").exists() and not (out / "report.html").exists()


@pytest.mark.parametrize("field,value", [
    ("rate", "abc"), ("reports", "xyz"), ("taint", "x"), ("repro", [1, 2]),
    ("ci95", [0, "x"]), ("trials", -1), ("events", [1]), ("seconds", float("inf")),
    ("report_titles", {"x": "y"}), ("verdict", 3),
])
def test_lab_merge_type_checks_cell_json(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         field: str, value: Any) -> None:
    data = record_json()
    data[field] = value
    shard = crafted_shard(tmp_path, data)
    err = one_line_exit_2(capsys, ["lab", "merge", str(shard), "--out",
                                   str(tmp_path / "merged")], f"field {field}")
    assert "cell.json" in err or str(shard) in err


def test_lab_merge_type_checks_the_cell_of_a_record(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    data = record_json()
    data["cell"] = {**data["cell"], "cpus": "eight"}
    shard = crafted_shard(tmp_path, data)
    one_line_exit_2(capsys, ["lab", "merge", str(shard), "--out", str(tmp_path / "merged")],
                    "field cell.cpus")


def test_lab_merge_refuses_a_summary_that_is_a_link(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, outside: Path) -> None:
    shard = tmp_path / "shard"
    shard.mkdir()
    (shard / "summary.json").symlink_to(outside / "secret.txt")
    one_line_exit_2(capsys, ["lab", "merge", str(shard), "--out", str(tmp_path / "m")],
                    "symbolic link")
