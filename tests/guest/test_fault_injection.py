"""Fault injection (issue 10): `oomrace run`, `oomrace lab`, `oomrace bisect` and kernel
builds killed with SIGTERM or SIGKILL at a random moment (mid-boot, mid-stress,
mid-build), then checked: no process of theirs left (QEMU, pytest workers, make and its
compilers: each command's environment carries a marker its descendants inherit), every
run folder with a console log also has its result.json after SIGTERM, the bisected
repository clean and its bisect resumable or never started, and the build cache usable
with no stale temporary left once the next build of that kind has looked. The CI tier
kills each command with each signal once; `tox -e full` kills 50 in a row."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import bisect, cache, rootfs
from harness.arches import get_arch
from harness.errors import UsageError
from harness.kernel.build import builder, recipes
from harness.kernel.build.source import find_source_file

from ..bisect.test_bisect import fresh_clone, git, history_repo
from ..conftest import REPO, missing_shared, qemu_processes_with

pytestmark = [pytest.mark.guest, pytest.mark.kernel_build, pytest.mark.slow]

SEED = 20261126
TARGETS = ("run", "lab", "build", "kernel-build", "bisect")
MARK = "OOMRACE_FAULT_MARK"  # in the environment of everything a killed command started
SIGNALS = (signal.SIGTERM, signal.SIGKILL)
FAKE_KIND = "fault-build"
LAB_MATRIX = """\
name = "fault-injection"
[defaults]
arch = "aarch64"
kernel = "v4.14.2"
cpus = 2
boot_timeout = 120

[[cell]]
scenario = "oom"
duration = 20
expected = "corrupted"
"""
# A build that takes long enough to be killed: the harness's own logged, process-group
# build step (progress.run_logged, as for tuxmake) running a long sleep inside a cache
# entry; `started` appears in the temporary directory once the build process runs.
FAKE_BUILD = textwrap.dedent("""\
    import os, sys
    from harness import cache, signals
    from harness.kernel.build import builder, progress, recipes
    from harness.kernel.build.source import find_source_file

    signals.install()

    def build(tmp):
        script = 'echo started > "$1/started"; exec sleep 600'
        with (tmp / "build.log").open("w") as log:
            progress.run_logged(["sh", "-c", script, "sh", str(tmp)], log, os.environ,
                                       progress.BuildProgress("fake", False), "build",
                                       tmp, None)

    try:
        cache.entry(sys.argv[1], sys.argv[2], build)
    except KeyboardInterrupt as e:
        sys.exit(signals.exit_status(e))
""")


@dataclass
class Kill:
    """One fault: which command, which signal, and how long after its trigger."""

    target: str
    sig: int
    delay: float
    workdir: Path
    log: list[str] = field(default_factory=list)
    qemu_at_kill: list[int] = field(default_factory=list)  # QEMU running when it was sent


def plan(count: int, seed: int = SEED) -> list[tuple[str, int, float]]:
    """Every (target, signal) pair once in a seeded order, then seeded random ones; each
    with a delay after its trigger (the first console output, or the build's start)
    that falls in boot (3-8 s under TCG), stress, or build."""
    rng = random.Random(seed)
    pairs = [(t, s) for t in TARGETS for s in SIGNALS]
    rng.shuffle(pairs)
    while len(pairs) < count:
        pairs.append((rng.choice(TARGETS), rng.choice(SIGNALS)))
    return [(t, s, round(rng.uniform(0.0, LATEST[t]), 2)) for t, s in pairs[:count]]


# Seconds after the trigger a kill may come: a guest boots in 3-8 s and then stresses;
# the cached build takes about 0.7 s in all; the fake build runs until killed.
# bisect: from `git bisect start` on; the first step builds a commit no cache has (about a
# minute with ccache warm), so a kill up to 30 s later lands in the build.
LATEST = {"run": 15.0, "lab": 15.0, "kernel-build": 0.5, "build": 1.0, "bisect": 30.0}


def _env(workdir: Path, cache_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, **{MARK: str(workdir)})
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if cache_dir is not None:
        env["OOMRACE_CACHE"] = str(cache_dir)
    return env


def _wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _console_logs(root: Path) -> list[Path]:
    return [p for p in root.rglob("console.log") if p.stat().st_size > 0]


def processes_mentioning(marker: str) -> list[str]:
    """Live processes (other than this one) whose command line or environment mentions
    `marker`: QEMU, pytest and its workers (whose environment names the plan), builds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if state != "Z" and (marker.encode() in cmdline or marker.encode() in environ):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command[:200]}")
    return found


def _start(kill: Kill, fake_cache: Path) -> tuple[subprocess.Popen[str], Callable[[], object]]:
    """Start the command to kill and return it with its trigger: the moment to count from."""
    w = kill.workdir
    w.mkdir(parents=True)
    env = _env(w)
    if kill.target == "run":
        argv = ["run", "--arch", "aarch64", "--kernel", "v4.14.2", "--scenario", "oom",
                "--duration", "20", "--cpus", "2", "--artifacts", str(w / "art")]
        trigger: Callable[[], object] = lambda: _console_logs(w)  # noqa: E731
    elif kill.target == "lab":
        (w / "matrix.toml").write_text(LAB_MATRIX)
        argv = ["lab", str(w / "matrix.toml"), "--out", str(w / "night"), "-n", "1"]
        trigger = lambda: _console_logs(w)  # noqa: E731
    elif kill.target == "bisect":
        repo = _bisect_repo(w.parent / "bisect-repo")
        argv = ["bisect", "--repo", str(repo), "--arch", "aarch64", "--scenario", "mrelease",
                "--good", "good-end", "--bad", "HEAD", "--artifacts", str(w / "art")]
        trigger = lambda: (repo / ".git" / "BISECT_START").exists()  # noqa: E731
    elif kill.target == "kernel-build":  # cached: killed, if at all, while it looks it up
        argv = ["kernel", "build", "--recipe", "v4.14.2", "--arch", "aarch64"]
        trigger = lambda: True  # noqa: E731
    else:
        script = w / "fake_build.py"
        script.write_text(FAKE_BUILD)
        cmd = [sys.executable, str(script), FAKE_KIND, f"key-{w.name}"]
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(w, fake_cache), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return proc, lambda: _fake_build_started(fake_cache, w.name)
    proc = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=REPO, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, trigger


def _bisect_repo(path: Path) -> Path:
    """One clone of the bisect tests' history for every bisect kill, with a commit on top
    that no earlier build has cached, so the first step builds for real."""
    if not path.exists():
        fresh_clone(path)
        mm = path / "mm" / "oom_kill.c"
        mm.write_text(mm.read_text() + "\n/* oomrace fault injection: a fresh build */\n")
        git(path, "-c", "user.name=oomrace", "-c", "user.email=oomrace@localhost",
            "commit", "-q", "-a", "-m", "fault injection: a commit nothing has built")
    return path


def check_repository(kill: Kill, what: str) -> None:
    """The bisected repository has no stray change, and its bisect either never started
    or is the one `oomrace bisect --resume` continues; `git bisect reset` ends it."""
    repo = kill.workdir.parent / "bisect-repo"
    assert git(repo, "status", "--porcelain") == "", f"{what}: the working tree changed"
    if (repo / ".git" / "BISECT_START").exists():
        state = bisect.load_state(repo)  # a one-line UsageError if it were unreadable
        assert state.phase != "done", what
        git(repo, "bisect", "reset")
    bisect.state_path(repo).unlink(missing_ok=True)
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main", what


def _fake_build_started(fake_cache: Path, name: str) -> bool:
    kind = fake_cache / FAKE_KIND
    return kind.is_dir() and any(kind.glob(f".key-{name}.tmp-*/started"))


def inject(kill: Kill, fake_cache: Path) -> subprocess.Popen[str]:
    """Start, wait for the trigger, sleep the delay, send the signal, wait for the end."""
    proc, trigger = _start(kill, fake_cache)
    try:
        started = _wait_for(lambda: trigger() or proc.poll() is not None, 180)
        assert started, f"{kill.target} never reached its trigger"
        time.sleep(kill.delay)
        if proc.poll() is None:
            kill.qemu_at_kill = qemu_processes_with(str(kill.workdir))
            proc.send_signal(kill.sig)
        out, _ = proc.communicate(timeout=240)
        kill.log.append(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return proc


def check(kill: Kill, proc: subprocess.Popen[str], fake_cache: Path) -> None:
    w, output = kill.workdir, "".join(kill.log)[-3000:]
    what = f"{kill.target} killed by {signal.Signals(kill.sig).name} after {kill.delay} s"
    # Nothing outlives the command. QEMU dies at once with a SIGKILLed `run`: nothing but
    # PR_SET_PDEATHSIG could end it. After SIGKILL of the lab, its pytest (SIGTERM on the
    # lab's death) ends the cell and its guest.
    if kill.target == "run" and kill.sig == signal.SIGKILL and kill.qemu_at_kill:
        assert _wait_for(lambda: not qemu_processes_with(str(w)), 5), \
            f"{what}: QEMU {kill.qemu_at_kill} outlived the harness"
    assert _wait_for(lambda: not qemu_processes_with(str(w)), 60), \
        f"{what}: QEMU left running\n{output}"
    assert _wait_for(lambda: not processes_mentioning(str(w)), 90), \
        f"{what}: processes left: {processes_mentioning(str(w))}\n{output}"
    check_cache(fake_cache, f"key-{w.name}", proc.pid, what)
    if kill.target == "bisect":
        check_repository(kill, what)
    if proc.returncode in (0, 1):
        return  # it finished before the signal (a cached build, or a cell that ended)
    if kill.sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, f"{what}: exit {proc.returncode}"
        return
    # A SIGTERM while the cached build is still importing (before its handler) kills it
    # outright, with nothing to clean up; every other command ends as on Ctrl-C.
    expected = {128 + signal.SIGTERM}
    if kill.target == "kernel-build":
        expected.add(-signal.SIGTERM)
    assert proc.returncode in expected, f"{what}: exit {proc.returncode}, not 143\n{output}"
    for console in _console_logs(w):  # a run that started has its result
        assert (console.parent / "result.json").is_file(), \
            f"{what}: {console.parent} has a console log but no result.json\n{output}"
    if kill.target == "lab" and (w / "night" / "plan.json").is_file():
        assert (w / "night" / "summary.json").is_file(), f"{what}: no summary\n{output}"


@contextlib.contextmanager
def cache_at(root: Path) -> Iterator[None]:
    """The harness's cache at `root` in this process for a while; the previous one after
    (the rest of the session, CI's OOMRACE_CACHE included, must keep its own)."""
    before = os.environ.get("OOMRACE_CACHE")
    os.environ["OOMRACE_CACHE"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["OOMRACE_CACHE"]
        else:
            os.environ["OOMRACE_CACHE"] = before


def check_cache(fake_cache: Path, key: str, pid: int, what: str) -> None:
    """The key the killed build was making builds now, a cached key is a hit, and no
    temporary directory of a dead builder is left in the kind."""
    with cache_at(fake_cache):
        def fill(tmp: Path) -> None:
            (tmp / "image").write_text("built")

        assert (cache.entry(FAKE_KIND, key, fill) / "image").read_text() == "built"
        hit = cache.entry(FAKE_KIND, "cached", lambda tmp: pytest.fail("a hit rebuilt"))
        assert (hit / "image").is_file()
        left = [p.name for p in (fake_cache / FAKE_KIND).iterdir()
                if p.is_dir() and p.name.startswith(".")]
        assert left == [], f"{what}: stale temporaries {left}"
    # The shared cache the commands read: a SIGKILLed build leaves its temporary directory,
    # which the next build of that kind removes (remove_stale is what it calls first).
    real = cache.cache_root()
    kinds = [k for k in real.iterdir() if k.is_dir()]
    for kind in kinds:
        cache.remove_stale(kind)
    left = [p for k in kinds for p in k.glob(f".*.tmp-{pid}-*")]
    assert left == [], f"{what}: the killed process left {left}"


@pytest.fixture(scope="module")
def built() -> None:
    """The kernel and initramfs the killed commands boot, built before the first kill
    (a cold cache builds them once here, not inside a command about to be killed)."""
    recipe = recipes.load_recipe("v4.14.2")
    try:
        find_source_file(recipe.source)
    except UsageError as e:
        missing_shared(f"the Linux 4.14.2 tarball is not here: {e}")
    builder.build(recipe, "aarch64", progress=False)
    rootfs.build(get_arch("aarch64"))
    history_repo()  # the bisect kills clone it


def run_kills(tmp_path: Path, count: int) -> None:
    fake_cache = tmp_path / "fake-cache"
    with cache_at(fake_cache):
        cache.entry(FAKE_KIND, "cached", lambda tmp: (tmp / "image").write_text("built"))
    started = time.monotonic()
    for i, (target, sig, delay) in enumerate(plan(count)):
        kill = Kill(target, sig, delay, tmp_path / f"k{i:02d}-{target}")
        proc = inject(kill, fake_cache)
        check(kill, proc, fake_cache)
        print(f"kill {i + 1}/{count}: {target} {signal.Signals(sig).name} after {delay} s: "
              f"exit {proc.returncode} ({time.monotonic() - started:.0f} s so far)")


CI_KILLS = 10  # every command with each signal once: about 6 minutes on 2 busy cores


def test_the_plan_covers_every_command_and_signal() -> None:
    assert {(t, s) for t, s, _ in plan(CI_KILLS)} == {(t, s) for t in TARGETS
                                                       for s in SIGNALS}
    assert plan(50) == plan(50) and len(plan(50)) == 50


@pytest.mark.timeout(3600)  # a cold cache builds the kernel first; the kills take ~1 min
@pytest.mark.usefixtures("built")
def test_random_kills(tmp_path: Path) -> None:
    run_kills(tmp_path, CI_KILLS)


@pytest.mark.full
@pytest.mark.timeout(3600)  # about 15 s a kill on average
@pytest.mark.usefixtures("built")
def test_fifty_kills_in_a_row(tmp_path: Path) -> None:
    run_kills(tmp_path, 50)
