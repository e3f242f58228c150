"""Issue 10 (hardening): each finding as a test that failed before its fix."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from harness import cli, lab
from harness.arches import GuestSpec, get_arch, qemu_argv
from harness.errors import UsageError
from harness.inputs import positive_number
from harness.ssh import RunKey

RECIPES = ["v6.1", "v6.1-reaper-fullmm"]


def _shard(directory: Path, cell_ids: list[str]) -> None:
    """A minimal shard folder whose summary names `cell_ids`."""
    directory.mkdir(parents=True)
    cells = [{"id": cid, "verdict": "clean", "outcome": "pass", "expected": "clean",
              "paths": {"console": "c", "dmesg": "d"}} for cid in cell_ids]
    summary = {"cells": cells, "planned": cell_ids, "matrix_sha256": "x"}
    (directory / "summary.json").write_text(json.dumps(summary))


# --- 1: lab merge and cell ids from a summary ----------------------------------------------


@pytest.mark.parametrize("cid", ["../../victim", "..", ".", "a/b", "", "/abs", "a\0b"])
def test_merge_refuses_cell_ids_that_are_not_one_path_component(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], cid: str) -> None:
    victim = tmp_path / "o" / "victim"  # where out/cells/../../victim points
    victim.mkdir(parents=True)
    (victim / "keep").write_text("precious")
    shard = tmp_path / "s" / "t"
    _shard(shard, [cid])
    (tmp_path / "s" / "victim").mkdir()  # what a hostile shard would copy over it
    out = tmp_path / "o" / "out"
    code = cli.main(["lab", "merge", str(shard), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cell id" in err
    assert (victim / "keep").read_text() == "precious"


# --- 2: the run's SSH key --------------------------------------------------------------------


def test_run_key_is_created_private_and_does_not_follow_symlinks(tmp_path: Path) -> None:
    key = RunKey.generate()
    path = tmp_path / "id_ed25519"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    target = tmp_path / "elsewhere"
    target.write_text("not a key")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        key.save(link)
    assert target.read_text() == "not a key"


def test_run_key_never_exists_with_wider_permissions(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    modes: list[int] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        modes.append(mode)
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", spy)
    RunKey.generate().save(tmp_path / "k")
    assert modes == [0o600]


# --- 4: commas in paths given to QEMU options -------------------------------------------------


def test_commas_in_the_console_log_path_are_escaped(tmp_path: Path) -> None:
    log = tmp_path / "a,logappend=on,b" / "console.log"
    spec = GuestSpec(kernel=tmp_path / "k", initrd=tmp_path / "i", cmdline="console=x",
                     console_log=log)
    argv = qemu_argv(get_arch("x86_64"), spec)
    chardev = argv[argv.index("-chardev") + 1]
    assert chardev.endswith(f"logfile={str(log).replace(',', ',,')}")
    # Split as QEMU does (",," is a literal comma): the last option is the whole path.
    parts = chardev.replace(",,", "\0").split(",")
    assert parts[-1].replace("\0", ",") == f"logfile={log}"


# --- 5: finite positive numbers ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "Infinity", "0", "-1", "1e999",
                                  "x", ""])
def test_positive_number_refuses_nan_inf_and_non_positive(text: str) -> None:
    with pytest.raises(UsageError, match="--duration"):
        positive_number(text, "--duration")


def test_positive_number_accepts_finite_positive() -> None:
    assert positive_number("2.5", "--duration") == 2.5
    assert positive_number(3, "duration") == 3.0


@pytest.mark.parametrize("option", ["--duration", "--boot-timeout"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_cli_refuses_nan_and_inf(capsys: pytest.CaptureFixture[str], option: str,
                                 value: str) -> None:
    assert cli.main(["run", option, value]) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err


@pytest.mark.parametrize("key", ["duration", "boot_timeout", "timeout"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_matrix_refuses_nan_and_inf(key: str, value: str) -> None:
    text = (f'[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "mrelease"\n'
            f"{key} = {value}\n")
    with pytest.raises(lab.MatrixError, match=key):
        lab.parse_matrix(text, Path("m.toml"), recipes=RECIPES)


# --- 10: one atomic write -----------------------------------------------------------------


def test_atomic_write_fsyncs_and_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import atomicio

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = tmp_path / "result.json"
    atomicio.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and synced
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import atomicio

    path = tmp_path / "summary.json"
    path.write_text('{"old": true}\n')

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        atomicio.write_json(path, {"new": True})
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_json_files_are_written_through_the_atomic_helper() -> None:
    source = Path(__file__).resolve().parents[2] / "harness"
    offenders = [f"{p.name}:{n}" for p in sorted(source.glob("*.py"))
                 for n, line in enumerate(p.read_text().splitlines(), start=1)
                 if "write_text(json.dumps" in line or "tmp.replace(" in line]
    assert offenders == []


# --- 6: a corrupt cache record is rebuilt --------------------------------------------------


def test_cache_entry_that_fails_its_check_is_rebuilt(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import atomicio, cache

    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path))
    builds: list[Path] = []

    def build(out: Path) -> None:
        builds.append(out)
        atomicio.write_json(out / "meta.json", {"release": "6.1"})

    def valid(entry: Path) -> bool:
        return atomicio.read_json_object(entry / "meta.json") is not None

    first = cache.entry("kernels", "k", build, valid)
    (first / "meta.json").write_text("{truncated")
    again = cache.entry("kernels", "k", build, valid)
    assert again == first and len(builds) == 2
    assert json.loads((again / "meta.json").read_text()) == {"release": "6.1"}
    assert cache.entry("kernels", "k", build, valid) == first and len(builds) == 2


# --- 6: one-line errors instead of tracebacks ------------------------------------------------

MATRIX = '[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "smoke"\n'


def refused_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                        needle: str) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def fake_bzimage(path: Path) -> Path:
    data = bytearray(0x400)
    data[0x202:0x206] = b"HdrS"
    path.write_bytes(bytes(data))
    return path


def test_corrupt_gzip_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "vmlinuz"
    bad.write_bytes(b"\x1f\x8b" + b"\xff" * 200)
    refused_in_one_line(capsys, ["run", "--arch", "aarch64", "--kernel", str(bad),
                                 "--artifacts", str(tmp_path / "a")], "gzip")


def test_artifacts_under_a_regular_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    kernel = fake_bzimage(tmp_path / "bzImage")
    refused_in_one_line(capsys, ["run", "--kernel", str(kernel), "--artifacts",
                                 str(tmp_path / "file" / "sub")], "--artifacts")


@pytest.mark.parametrize("text", ["cell = [1, 2]\n", "cell = [[1]]\n", 'cell = ["x"]\n',
                                  "defaults = 3\n" + MATRIX])
def test_matrix_with_a_cell_that_is_not_a_table(tmp_path: Path, text: str) -> None:
    with pytest.raises(lab.MatrixError):
        lab.parse_matrix(text, tmp_path / "m.toml", recipes=RECIPES)


def test_matrix_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "m.toml"
    matrix.write_bytes(MATRIX.encode() + b'description = "\xff\xfe"\n')
    refused_in_one_line(capsys, ["lab", str(matrix), "--list"], "UTF-8")


def test_merge_of_a_summary_missing_a_key(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    shard = tmp_path / "s"
    shard.mkdir()
    summary = {"cells": [{"id": "x86_64-debian-smoke-r0", "outcome": "pass"}],
               "planned": ["x86_64-debian-smoke-r0"], "matrix_sha256": "x"}
    (shard / "summary.json").write_text(json.dumps(summary))
    refused_in_one_line(capsys, ["lab", "merge", str(shard), "--out", str(tmp_path / "o")],
                        "verdict")


@pytest.mark.parametrize("state", ["[]", "3", '{"version": 1}', '{"version": 1, "config": []}',
                                   '{"version": 1, "config": {"repo": 1}}'])
def test_bisect_state_of_the_wrong_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         state: str) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".git" / "oomrace-bisect.json").write_text(state)
    refused_in_one_line(capsys, ["bisect", "--repo", str(tmp_path), "--resume"],
                        "bisect state")


@pytest.mark.parametrize("fragment", ["{foo}.config", "{0}.config", "{arch.x}", "{", "}"])
def test_recipe_fragment_with_braces(tmp_path: Path, fragment: str) -> None:
    from harness.kernel.build.recipes import load_recipe

    toml = tmp_path / "kernels.toml"
    toml.write_text(f'[recipe.r]\nsource = "debian:linux-source-6.1"\n'
                    f'fragments = ["{fragment}"]\n')
    with pytest.raises(UsageError, match="fragment"):
        load_recipe("r", toml).fragment_paths("aarch64")


def test_lab_out_that_is_a_regular_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX)
    out = tmp_path / "out"
    out.write_text("x")
    refused_in_one_line(capsys, ["lab", str(matrix), "--out", str(out)], "--out")
    shard = tmp_path / "s"
    _shard(shard, ["x86_64-debian-smoke-r0"])
    refused_in_one_line(capsys, ["lab", "merge", str(shard), "--out", str(out)], "--out")


# --- 11: a harness bug is exit 70 with the traceback saved -------------------------------


def test_unexpected_exception_is_exit_70_with_a_saved_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))

    def boom(args: object) -> int:
        raise RuntimeError("a harness bug")

    monkeypatch.setattr(cli, "cmd_parse_log", boom)
    assert cli.main(["parse-log", "x"]) == 70
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a harness bug" in err and "Traceback" not in err
    saved = Path(err.rsplit(" ", 1)[-1])
    assert saved.is_file() and saved.is_relative_to(tmp_path / "cache")
    assert "RuntimeError: a harness bug" in saved.read_text()


def test_kernel_build_main_follows_the_same_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.kernel.build import builder

    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))

    def boom(*a: object, **k: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(builder, "build", boom)
    assert cli.main(["kernel", "build", "--recipe", "v6.1", "--arch", "aarch64"]) == 70
    assert cli.main(["kernel", "build", "--arch", "sparc"]) == 2
    assert cli.main(["kernel", "build", "--frobnicate"]) == 2


# --- 9: parse-log on files that are not ordinary logs --------------------------------------

CRASH = ("[   10.000000] pagealloc: memory corruption\n"
         "[   10.000001] CPU: 1 PID: 42 Comm: stress Not tainted 6.1.0 #1\n"
         "[   10.000002] Call trace:\n"
         "[   10.000003]  dump_backtrace+0x0/0x1e0\n")


@pytest.mark.timeout(20)
def test_parse_log_refuses_a_fifo(tmp_path: Path) -> None:
    from harness import kernel_log

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        kernel_log.parse_file(fifo)


@pytest.mark.timeout(20)
def test_parse_log_refuses_dev_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["parse-log", "/dev/zero"]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and len(err.strip().splitlines()) == 1


def test_one_report_is_capped_in_size(tmp_path: Path) -> None:
    from harness import kernel_log

    log = tmp_path / "console.log"
    huge = "[   10.000004] " + "x" * (4 << 20) + "\n"
    log.write_text(CRASH + huge * 3 + "[   10.000005] ---[ end trace ]---\n")
    reports = kernel_log.parse_file(log).reports
    assert len(reports) == 1 and reports[0].title.startswith("pagealloc: memory corruption")
    assert sum(len(line) for line in reports[0].lines) <= kernel_log.MAX_REPORT_BYTES


def test_parse_file_reads_lines_not_the_whole_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import kernel_log

    log = tmp_path / "console.log"
    log.write_bytes(b"\xff\xfe junk\r\n" + CRASH.encode() * 3)
    expected = kernel_log.parse(log.read_bytes().decode("utf-8", errors="replace"))

    def refused(self: Path) -> bytes:
        raise AssertionError("read_bytes reads the whole file at once")

    monkeypatch.setattr(Path, "read_bytes", refused)
    assert kernel_log.parse_file(log) == expected


# --- 7: QEMU's shutdown: reaped pids are not signalled, survivors are errors ----------------


def _machine(tmp_path: Path) -> Any:
    from harness.machine import Machine, MachineOptions

    spec = GuestSpec(kernel=tmp_path / "k", initrd=tmp_path / "i", cmdline="",
                     console_log=tmp_path / "console.log")
    return Machine(get_arch("x86_64"), spec, MachineOptions(shutdown_timeout=0.1), tmp_path)


def test_a_reaped_qemu_is_never_signalled(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: signalled.append((pid, sig)))
    machine = _machine(tmp_path)
    machine.proc = subprocess.Popen(["true"], start_new_session=True)
    machine.proc.wait(10)  # reaped: its pid may belong to someone else by now
    machine.close()
    assert signalled == [] and machine.proc is None


class _Unkillable:
    """A process that ignores every signal and never exits (stuck in D state, say)."""

    pid = 999_999_999
    returncode = None

    def poll(self) -> None:
        return None

    def wait(self, timeout: float | None = None) -> int:
        import subprocess

        raise subprocess.TimeoutExpired("qemu", timeout or 0)


def test_a_qemu_that_survives_sigkill_is_an_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import HarnessError

    signalled: list[int] = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: signalled.append(sig))
    machine = _machine(tmp_path)
    machine.proc = _Unkillable()
    with pytest.raises(HarnessError, match="survived SIGKILL"):
        machine.close()
    assert 9 in signalled


# --- 8: the serial reader keeps a bounded backlog ------------------------------------------


def test_console_backlog_is_bounded_and_keeps_the_newest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import time

    from harness import console

    monkeypatch.setattr(console, "MAX_QUEUED_BYTES", 1 << 20)
    script = ("import sys; w = sys.stdout.buffer; "
              "[w.write(b'x' * 65536) for _ in range(128)]; w.write(b'THE-END'); w.flush()")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        stream = console.ConsoleStream(proc)
        deadline = time.monotonic() + 30
        while stream.total_bytes < 128 * 65536 + 7 and time.monotonic() < deadline:
            time.sleep(0.05)  # nobody reads: the reader thread keeps draining QEMU
        proc.wait(10)
        stream.join(10)
        assert stream.total_bytes == 128 * 65536 + 7
        assert stream.queued_bytes <= (1 << 20) and stream.dropped_bytes > 0
        data = stream.drain_buffer()
        assert data.endswith(b"THE-END") and len(data) <= (1 << 20)
    finally:
        proc.kill()
        proc.wait(5)


# --- 3: guest programs build from a path with spaces, and a build that made nothing fails --


def _project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shutil

    from harness import rootfs

    project = tmp_path / "my project"
    shutil.copytree(Path(rootfs.__file__).resolve().parents[1] / "rootfs" / "guest",
                    project / "rootfs" / "guest", ignore=shutil.ignore_patterns("build"))
    monkeypatch.setattr(rootfs, "project_dir", lambda name: project / name)
    return project / "rootfs" / "guest"


def test_guest_programs_build_when_the_project_path_has_a_space(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import rootfs

    guest = _project_copy(tmp_path, monkeypatch)
    built = rootfs.build_guest_programs(get_arch("x86_64"), tmp_path / "out")
    assert sorted(p.name for p in built) == sorted(p.stem for p in guest.glob("*.c"))


def test_a_make_that_builds_nothing_is_an_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import rootfs
    from harness.errors import RootfsError

    guest = _project_copy(tmp_path, monkeypatch)
    (guest / "Makefile").write_text("all:\n\t@true\n")
    with pytest.raises(RootfsError, match="oomrace-stress"):
        rootfs.build_guest_programs(get_arch("x86_64"), tmp_path / "out")


def test_a_guest_in_a_reused_folder_replaces_the_old_key(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A resumed bisect step boots again in its folder: the strict key creation must not
    # turn the earlier run's key file into a FileExistsError.
    from harness import guest as guest_module
    from harness.errors import HarnessError
    from harness.kernel.image import KernelImage

    class Stop(HarnessError):
        pass

    def stop(*args: object, **kwargs: object) -> None:
        raise Stop("stop before QEMU")

    monkeypatch.setattr(guest_module.accel, "resolve", lambda *a: "tcg")
    monkeypatch.setattr(guest_module.Guest, "_machine", stop)
    old = tmp_path / "id_ed25519"
    old.write_text("an earlier run's key")
    image = KernelImage(path=tmp_path / "k", arch=get_arch("x86_64"), description="k")
    with pytest.raises(Stop):
        guest_module.Guest(get_arch("x86_64"), image, tmp_path).__enter__()
    assert "OPENSSH PRIVATE KEY" in old.read_text()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_bisect_refuses_artifacts_under_a_file_before_starting(tmp_path: Path) -> None:
    import subprocess

    from harness import bisect

    repo = tmp_path / "repo"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for n in (1, 2):
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", str(n)],
                       check=True, env=env)
    (tmp_path / "file").write_text("x")
    cfg = bisect.BisectConfig(repo=repo, good="HEAD~1", bad="HEAD", arch="x86_64",
                              artifacts=tmp_path / "file" / "sub")
    with pytest.raises(UsageError, match="--artifacts"):
        bisect._validate(cfg)


@pytest.mark.parametrize("duration", [math.nan, math.inf])
def test_workload_refuses_a_duration_that_never_ends(duration: float) -> None:
    from harness.workload import get_workload

    with pytest.raises(UsageError, match="--duration"):
        get_workload("mrelease", duration_s=duration)


def test_a_night_ignores_cell_records_that_are_not_objects(tmp_path: Path) -> None:
    good = lab.CellRecord(lab.Cell(arch="x86_64", kernel="debian", scenario="smoke"))
    for cid, content in (("a", "[]"), ("b", "3"), (good.id, json.dumps(good.to_dict()))):
        lab.cell_dir(tmp_path, cid).mkdir(parents=True)
        (lab.cell_dir(tmp_path, cid) / "cell.json").write_text(content)
    assert [r.id for r in lab.read_records(tmp_path, ["a", "b", good.id])] == [good.id]
