"""SIGTERM and SIGHUP take Ctrl-C's path (issue 10): the helper, the exit status, the
process groups the lab and the kernel build signal as a whole. No QEMU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import cli, evaluate, lab, signals
from harness import proc as host_proc
from harness.kernel.build import builder


@pytest.fixture(autouse=True)
def _restore_handlers() -> Iterator[None]:
    """Each test gets Python's default handlers back and a helper with no signal seen."""
    saved = {sig: signal.getsignal(sig) for sig in signals.HANDLED}
    for sig in signals.HANDLED:  # an earlier in-process cli.main() installed the helper
        signal.signal(sig, signal.SIG_DFL)
    signals.reset()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signals.reset()


def _deliver(sig: int) -> None:
    """Send `sig` to this process and give the interpreter a chance to run the handler."""
    os.kill(os.getpid(), sig)
    for _ in range(100):
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_raise_a_keyboard_interrupt_with_their_number(sig: int) -> None:
    assert signals.install()
    with pytest.raises(KeyboardInterrupt) as info:
        _deliver(sig)
    assert isinstance(info.value, signals.Interrupted)
    assert info.value.signum == sig
    assert signals.exit_status(info.value) == 128 + sig


def test_ctrl_c_keeps_130() -> None:
    assert signals.exit_status(KeyboardInterrupt()) == 130


def test_a_second_signal_does_not_break_the_cleanup_of_the_first() -> None:
    signals.install()
    cleaned = False
    with pytest.raises(signals.Interrupted):
        try:
            _deliver(signal.SIGTERM)
        finally:
            _deliver(signal.SIGTERM)  # ignored: the cleanup below still runs
            cleaned = True
    assert cleaned


def test_deferred_holds_the_signal_until_the_step_is_done() -> None:
    signals.install()
    steps = []
    with pytest.raises(signals.Interrupted) as info, signals.deferred():
        _deliver(signal.SIGHUP)
        steps.append("finished")  # the step was not cut
    assert steps == ["finished"]
    assert info.value.signum == signal.SIGHUP


def test_install_outside_the_main_thread_does_nothing() -> None:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(signals.install()))
    thread.start()
    thread.join()
    assert result == [False]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_oomrace_exits_128_plus_the_signal(sig: int, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def doctor(args: object) -> int:
        _deliver(sig)
        return 0

    monkeypatch.setattr(cli, "cmd_doctor", doctor)
    assert cli.main(["doctor"]) == 128 + sig
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"oomrace: interrupted ({signal.Signals(sig).name} received)"]


def test_kernel_build_installs_the_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_build(*args: object, **kwargs: object) -> object:
        _deliver(signal.SIGTERM)
        raise AssertionError("not reached")

    monkeypatch.setattr(builder, "build", fake_build)
    assert cli.main(["kernel", "build", "--recipe", "v4.14.2", "--arch", "aarch64"]) == \
        128 + signal.SIGTERM


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _group_with_grandchild(tmp_path: Path, trap: str = "") -> tuple[subprocess.Popen[str], int]:
    """A shell in a process group of its own with a `sleep` grandchild; the grandchild's pid."""
    pidfile = tmp_path / "grandchild.pid"
    script = f"{trap} sleep 300 & echo $! > {pidfile}; wait"
    proc = subprocess.Popen(["sh", "-c", script], process_group=0, text=True)
    for _ in range(500):  # until the forked shell has become `sleep` (its traps gone)
        text = pidfile.read_text().strip() if pidfile.is_file() else ""
        if text and _command(int(text)) == "sleep":
            return proc, int(text)
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("the grandchild never started")


def test_an_interrupted_build_ends_its_whole_process_group(tmp_path: Path) -> None:
    proc, grandchild = _group_with_grandchild(tmp_path)
    host_proc.end_group(proc)  # type: ignore[arg-type]
    assert proc.returncode == -signal.SIGTERM
    for _ in range(200):
        if not _alive(grandchild):
            break
        time.sleep(0.01)
    assert not _alive(grandchild), "make's compilers must not outlive the build"


def test_the_lab_forwards_the_signal_to_pytest_and_its_workers(tmp_path: Path) -> None:
    # The shell stands for pytest and the sleep for a worker: both get the lab's signal.
    proc, worker = _group_with_grandchild(tmp_path, trap="trap 'exit 3' HUP;")
    lab.launch._stop(proc, signal.SIGHUP)  # type: ignore[arg-type]
    assert proc.returncode == 3  # pytest got the signal itself and ended as it chose
    for _ in range(200):
        if not _alive(worker):
            break
        time.sleep(0.01)
    assert not _alive(worker)


def test_a_child_armed_with_on_parent_death_dies_with_its_parent(tmp_path: Path) -> None:
    # The parent starts `sleep` armed with SIGKILL, prints its pid, and is SIGKILLed.
    code = ("import subprocess, signal, sys, time\n"
            "from harness import signals\n"
            "p = subprocess.Popen(['sleep', '300'], "
            "preexec_fn=signals.on_parent_death(signal.SIGKILL))\n"
            "print(p.pid, flush=True)\ntime.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(10)
    for _ in range(200):
        if not _alive(child):
            break
        time.sleep(0.01)
    assert not _alive(child)


def test_an_interrupted_evaluation_keeps_its_finished_rows(tmp_path: Path) -> None:
    from harness.arches import get_arch
    from harness.machine import MachineOptions
    from harness.run import RunResult
    from tests.conftest import stress_workload

    calls: list[str] = []

    def runner(spec: object, workdir: Path) -> RunResult:
        calls.append(str(workdir))
        if len(calls) == 2:
            raise signals.Interrupted(signal.SIGTERM)
        return RunResult(arch="aarch64", kernel="bug", verdict="corrupted", reason="r",
                         workdir=str(workdir), console_log="c", dmesg="d",
                         workload=stress_workload(trials=2, detections=2, iterations=50))

    ev = evaluate.load_evaluation(evaluate.evaluation_names()[0])
    rows: list[evaluate.Row] = []
    with pytest.raises(signals.Interrupted):
        evaluate.evaluate(ev, [get_arch("aarch64")], tmp_path, MachineOptions(),
                          resolve=lambda recipe, arch: None,  # type: ignore[arg-type,return-value]
                          runner=runner, rows=rows, progress=lambda s: None)
    assert [r.role for r in rows] == ["bug"]


def test_a_run_cut_by_sigterm_still_writes_result_json(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from types import SimpleNamespace

    from harness import run
    from harness.arches import get_arch
    from harness.guest import GuestArtifacts
    from harness.kernel.image import ResolvedKernel

    class BootCut:
        """A guest whose boot is cut by SIGTERM after the console log has started."""

        def __init__(self, arch: object, image: object, workdir: Path, options: object,
                     extra_initrd: tuple[Path, ...] = ()) -> None:
            self.artifacts = GuestArtifacts(workdir, workdir / "console.log",
                                            workdir / "dmesg.txt")

        def __enter__(self) -> BootCut:
            self.artifacts.console_log.write_text("Booting Linux on physical CPU 0x0\n")
            raise signals.Interrupted(signal.SIGTERM)

        def __exit__(self, *exc: object) -> None:
            pass

    image = SimpleNamespace(description="fake", path=tmp_path / "Image", release="6.1",
                            vmlinux=None)
    monkeypatch.setattr(run, "Guest", BootCut)
    kernel = ResolvedKernel("fake", get_arch("aarch64"), image)  # type: ignore[arg-type]
    spec = run.RunSpec(kernel=kernel)
    with pytest.raises(signals.Interrupted):
        run.run_one(spec, tmp_path / "run")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["verdict"] == "error"
    assert result["reason"] == "interrupted (SIGTERM received)"


def test_a_git_command_of_bisect_is_not_cut_by_sigterm(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import bisect

    finished: list[list[str]] = []

    def git_checkout(argv: list[str], **kwargs: object) -> host_proc.Completed:
        _deliver(signal.SIGTERM)  # arrives mid-checkout
        finished.append(argv)  # the checkout still completes (index.lock released)
        return host_proc.Completed(tuple(argv), 0, "", "")

    signals.install()
    monkeypatch.setattr(host_proc, "run", git_checkout)
    with pytest.raises(signals.Interrupted):
        bisect.Git(tmp_path).run("checkout", "-q", "--detach", "HEAD")
    assert finished == [["git", "-C", str(tmp_path), "checkout", "-q", "--detach", "HEAD"]]


def test_sigterm_mid_bisect_keeps_a_clean_resumable_repository(tmp_path: Path) -> None:
    from harness import bisect

    from .test_bisect_unit import FakeKernel, config, git, make_repo, quiet

    repo = tmp_path / "repo"
    shas = make_repo(repo, 16, bug_from=11, broken=(8,))

    def sigterm_at_step_4(call: int) -> BaseException | None:
        if call == 4:
            _deliver(signal.SIGTERM)
        return None

    signals.install()
    with pytest.raises(signals.Interrupted):
        bisect.start(config(repo, tmp_path, shas[0], shas[16]),
                     FakeKernel(repo, raise_on=sigterm_at_step_4), quiet)
    assert (repo / ".git" / "BISECT_START").is_file()  # kept for --resume, as on Ctrl-C
    assert not (repo / ".git" / "index.lock").exists()
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    state = bisect.resume(repo, lambda c: FakeKernel(repo, seed=8), quiet)
    assert state.result is not None and state.result["commit"] == shas[11]


def test_sigint_interrupts_even_when_inherited_as_ignored() -> None:
    """`cmd &` in a script starts us with SIGINT ignored; a SIGINT must still stop a run."""
    code = ("import os, signal, time\n"
            "from harness import signals\n"
            "signals.install()\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5); print('not interrupted')\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout.strip() == "interrupted", proc.stdout + proc.stderr
