"""The bisect logic over a real git repository with a fake kernel: commits are text
files, a scripted flaky bug (p = 0.3 per trial) and a commit that "does not build"."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import bisect
from harness.bisect import (
    BisectAborted,
    BisectConfig,
    Signature,
    StepOutcome,
    StepRequest,
    classify,
    needed_trials,
    overall_confidence,
    step_confidence,
)
from harness.errors import HarnessError, UsageError
from harness.verdict import wilson_interval

REPO_ROOT = Path(__file__).resolve().parents[2]
TITLE = "pagealloc: memory corruption in post_alloc_hook"
ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
           GIT_COMMITTER_EMAIL="t@t")


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=ENV, check=True)
    return proc.stdout.strip()


def make_repo(path: Path, commits: int, bug_from: int | None, fixed_from: int | None = None,
              broken: tuple[int, ...] = ()) -> list[str]:
    """Commits 0..commits; files `bug` ("1" from bug_from until fixed_from) and `broken`
    (present in the `broken` commits). Returns the shas, index = commit number."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shas = []
    for i in range(commits + 1):
        (path / "notes.txt").write_text(f"commit {i}\n")
        has_bug = bug_from is not None and i >= bug_from and (fixed_from is None
                                                              or i < fixed_from)
        (path / "bug").write_text("1\n" if has_bug else "0\n")
        if i in broken:
            (path / "broken").write_text("syntax error\n")
        elif (path / "broken").exists():
            (path / "broken").unlink()
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"commit {i}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


@dataclass
class FakeKernel:
    """Reads the step's commit from git like a build would; a flaky bug with rate p."""

    repo: Path
    p: float = 0.3
    seed: int = 7
    calls: list[str] = field(default_factory=list)
    interrupt_at: int | None = None  # raise KeyboardInterrupt at this call (1-based)
    crash_commits: set[str] = field(default_factory=set)
    raise_on: Callable[[int], BaseException | None] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        head = subprocess.run(["git", "-C", str(self.repo), "rev-parse", "HEAD"],
                              capture_output=True, text=True)
        self.user_head = head.stdout.strip()  # "" for a directory that is not a repository

    def __call__(self, request: StepRequest) -> StepOutcome:
        self.calls.append(request.commit)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.raise_on is not None:
            error = self.raise_on(len(self.calls))
            if error is not None:
                raise error
        # the user's tree never moves (git bisect --no-checkout); the step names its commit
        assert git(self.repo, "rev-parse", "HEAD") == self.user_head
        assert request.workdir.is_dir()
        if subprocess.run(["git", "-C", str(self.repo), "cat-file", "-e",
                           f"{request.commit}:broken"], capture_output=True).returncode == 0:
            return StepOutcome(kind="build_failed", error="KernelError: kernel build failed")
        if request.commit in self.crash_commits:
            return StepOutcome(kind="ran", trials=1, iterations=25,
                               crash_titles=["BUG: unable to handle page fault in foo"])
        has_bug = git(self.repo, "show", f"{request.commit}:bug").strip() == "1"
        trials = detections = 0
        for _ in range(request.trials):
            trials += 1
            if has_bug and self.rng.random() < self.p:
                detections += 1
                if request.stop_on_first:
                    break
        return StepOutcome(
            kind="ran", trials=trials, detections=detections, iterations=25 * trials,
            checker_corruptions=detections, corruption_titles=[TITLE] * detections,
            seconds=1.0, trial_seconds=0.1, console_log=str(request.workdir / "console.log"),
        )


def config(repo: Path, tmp_path: Path, good: str, bad: str, **kw: object) -> BisectConfig:
    return BisectConfig(repo=repo, good=good, bad=bad, arch="aarch64",
                        artifacts=tmp_path / "artifacts", calibration_batches=30,
                        **kw)  # type: ignore[arg-type]


def quiet(_: str) -> None:
    pass


# --- statistics --------------------------------------------------------------------


def test_needed_trials() -> None:
    assert needed_trials(0.5, 0.95) == 5  # 0.5^5 = 0.031 <= 0.05 < 0.5^4
    assert needed_trials(0.3, 0.95) == 9  # 0.7^9 = 0.040; 0.7^8 = 0.058
    assert needed_trials(1.0, 0.99) == 1
    for p in (0.05, 0.2, 0.61, 0.9):
        for c in (0.9, 0.95, 0.99):
            n = needed_trials(p, c)
            assert (1 - p) ** n <= 1 - c < (1 - p) ** (n - 1) + 1e-12
    with pytest.raises(UsageError):
        needed_trials(0.0, 0.95)
    with pytest.raises(UsageError):
        needed_trials(0.5, 1.0)


def test_confidence_formulas() -> None:
    assert step_confidence(0.5, 5) == pytest.approx(1 - 0.5 ** 5)
    assert step_confidence(0.5, 0) == 0.0
    assert overall_confidence(0.5, [5, 5]) == pytest.approx((1 - 0.5 ** 5) ** 2)
    bound = bisect.good_verdicts_bound(12)
    assert bound == math.ceil(math.log2(12)) + 2
    per = bisect.per_verdict_confidence(0.95, bound)
    n = needed_trials(0.61, per)
    assert overall_confidence(0.61, [n] * bound) >= 0.95


def test_calibration_bound_takes_its_share_of_the_confidence() -> None:
    # 3 of 6 batches at C = 0.95: the bound is at 1 - 0.7 * 0.05 = 0.965.
    cal = bisect.calibration_bounds(3, 6, 0.95)
    assert cal["p_low_confidence"] == pytest.approx(0.965)
    assert cal["p_low"] == pytest.approx(0.1338, abs=1e-4)
    assert cal["interval95"] == [pytest.approx(0.1181, abs=1e-4), pytest.approx(0.8819, abs=1e-4)]
    bound = bisect.good_verdicts_bound(16)
    per = bisect.per_verdict_confidence(bisect.verdicts_confidence(0.95), bound)
    n = needed_trials(cal["p_low"], per)
    assert n == 42  # README table; the 95% Wilson rule asked for 23
    # the promise: the bound's level times every verdict's confidence reaches C
    assert bisect.bisect_confidence(cal, [n] * bound) >= 0.95
    assert bisect.bisect_confidence(cal, [n - 1] * bound) < 0.95
    # a state from before: a Wilson p_low and no level keeps its old figure
    old = {"p_low": 0.1876, "p": 0.5}
    assert bisect.bisect_confidence(old, [23]) == pytest.approx(overall_confidence(0.1876, [23]))


def test_signature_matching_and_classify() -> None:
    sig = Signature(checker=False, titles=(TITLE,))
    assert sig.matches(0, [TITLE])
    assert sig.matches(0, ["pagealloc: memory corruption in free_pages_prepare"])  # family
    assert not sig.matches(0, ["Bad page state in process foo"])
    assert not sig.matches(3, [])  # checker corruption is not part of this signature
    assert Signature(checker=True, titles=()).matches(1, [])
    clean = StepOutcome(kind="ran", trials=5, iterations=125)
    assert classify(clean, sig, set(), 5)[0] == "good"
    crash = StepOutcome(kind="ran", trials=1, crash_titles=["WARNING in foo"])
    assert classify(crash, sig, set(), 5)[0] == "skip"
    assert classify(crash, sig, {"WARNING in foo"}, 1)[0] == "good"  # background noise
    other = StepOutcome(kind="ran", trials=1, detections=1,
                        corruption_titles=["Bad page state in process x"])
    assert classify(other, sig, set(), 5) == ("skip", "unrelated report: "
                                              "Bad page state in process x")
    assert classify(StepOutcome(kind="build_failed", error="boom"), sig, set(), 5)[0] == "skip"
    assert classify(StepOutcome(kind="error", error="boot"), sig, set(), 5)[0] == "skip"


# --- bisects over real git -----------------------------------------------------------


def test_finds_the_first_bad_commit_of_a_flaky_bug(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    # 16 commits after the good end: git proposes commit 8 first, which does not build.
    shas = make_repo(repo, 16, bug_from=11, broken=(8,))
    fake = FakeKernel(repo)
    lines: list[str] = []
    state = bisect.start(config(repo, tmp_path, shas[0], shas[16]), fake, lines.append)
    assert state.result is not None
    assert state.result["commit"] == shas[11]
    assert state.result["subject"] == "commit 11"
    assert state.result["confidence"] >= 0.95
    steps = {r.commit: r for r in state.records if r.role == "step"}
    assert steps[shas[8]].verdict == "skip" and "build failed" in steps[shas[8]].reason
    assert state.signature == Signature(checker=True, titles=(TITLE,))
    cal = state.calibration
    assert cal is not None and 0 < cal["p_low"] < 0.3 < cal["p_high"]
    # every good verdict had the planned number of trials
    plan = state.plan
    assert plan is not None
    goods = [r for r in state.records if r.verdict == "good"]
    assert goods and all(r.outcome.trials == plan["trials_per_good"] for r in goods)
    # git's own bisect state: log and replay work
    log = git(repo, "bisect", "log")
    assert f"# first bad commit: [{shas[11]}] commit 11" in log
    assert f"git bisect skip {shas[8]}" in log
    (tmp_path / "bisect.log").write_text(log + "\n")
    git(repo, "bisect", "reset")
    replay = subprocess.run(["git", "-C", str(repo), "bisect", "replay",
                             str(tmp_path / "bisect.log")], capture_output=True, text=True,
                            check=False)
    assert f"{shas[11]} is the first bad commit" in replay.stdout
    text = bisect.report_text(state)
    assert f"first bad commit: {shas[11]} commit 11" in text
    assert "confidence:" in text and "detection rate p:" in text
    assert any("expected cost" in line for line in lines)
    assert bisect.report_json(state)["result"]["commit"] == shas[11]


def test_find_fix(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 12, bug_from=0, fixed_from=7)
    state = bisect.start(config(repo, tmp_path, good=shas[12], bad=shas[0], find_fix=True),
                         FakeKernel(repo), quiet)
    assert state.result is not None and state.result["commit"] == shas[7]
    assert state.result["kind"] == "fix" and state.result["confidence"] >= 0.95
    assert f"# first fixed commit: [{shas[7]}]" in git(repo, "bisect", "log")
    assert "first fixed commit" in bisect.report_text(state)


def test_unrelated_crash_is_a_skip(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 8, bug_from=6)
    fake = FakeKernel(repo, crash_commits={shas[4]})  # git's first proposal
    state = bisect.start(config(repo, tmp_path, shas[0], shas[8]), fake, quiet)
    assert state.result is not None and state.result["commit"] == shas[6]
    crashed = [r for r in state.records if r.commit == shas[4]]
    assert crashed and crashed[0].verdict == "skip" and "unrelated" in crashed[0].reason


def test_interrupt_and_resume(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 16, bug_from=11, broken=(8,))
    cfg = config(repo, tmp_path, shas[0], shas[16])
    # calls: 1 calibration, 2 good end, 3 the broken commit, 4 its neighbour: interrupted
    with pytest.raises(KeyboardInterrupt):
        bisect.start(cfg, FakeKernel(repo, interrupt_at=4), quiet)
    assert (repo / ".git" / "BISECT_START").is_file()  # git still bisecting
    saved = bisect.load_state(repo)
    assert saved.phase == "bisecting" and len(saved.records) == 3
    with pytest.raises(UsageError, match="already in progress"):
        bisect.start(cfg, FakeKernel(repo), quiet)
    fake = FakeKernel(repo, seed=8)
    state = bisect.resume(repo, lambda c: fake, quiet)
    assert state.result is not None and state.result["commit"] == shas[11]
    assert shas[8] not in fake.calls  # decided before the interruption, not re-run
    assert fake.calls[0] not in (shas[0], shas[16])  # no recalibration
    assert state.result["confidence"] >= 0.95
    # resuming a finished bisect just reports it again
    again = bisect.resume(repo, lambda c: FakeKernel(repo), quiet)
    assert again.result == state.result


def test_a_state_from_the_wilson_rule_resumes_with_its_plan(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 16, bug_from=11, broken=(8,))
    with pytest.raises(KeyboardInterrupt):
        bisect.start(config(repo, tmp_path, shas[0], shas[16]),
                     FakeKernel(repo, interrupt_at=4), quiet)
    # Rewrite the state as the Wilson rule wrote it: no level, no interval95, its own plan.
    saved = bisect.load_state(repo)
    assert saved.calibration is not None and saved.plan is not None
    k, n = saved.calibration["detections"], saved.calibration["trials"]
    low, high = wilson_interval(k, n)
    for key in ("p_low_confidence", "p_low_method", "interval95"):
        del saved.calibration[key]
    saved.calibration.update(p_low=low, p_high=high)
    saved.plan["trials_per_good"] = 7
    bisect.save_state(saved)
    state = bisect.resume(repo, lambda c: FakeKernel(repo, seed=8), quiet)
    assert state.result is not None and state.result["commit"] == shas[11]
    goods = [r.outcome.trials for r in state.records if r.verdict == "good"]
    assert all(t == 7 for t in goods[1:])  # after the resume: the old plan's trials
    assert state.result["confidence"] == pytest.approx(overall_confidence(low, goods))
    assert "95% Wilson interval" in bisect.report_text(state)


def test_interrupt_during_calibration_then_resume(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 6, bug_from=3)
    with pytest.raises(KeyboardInterrupt):
        bisect.start(config(repo, tmp_path, shas[0], shas[6]),
                     FakeKernel(repo, interrupt_at=1), quiet)
    state = bisect.resume(repo, lambda c: FakeKernel(repo), quiet)
    assert state.result is not None and state.result["commit"] == shas[3]


def test_harness_bug_stops_the_bisect(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 8, bug_from=5)

    def boom(call: int) -> BaseException | None:
        return RuntimeError("oops") if call == 3 else None

    with pytest.raises(BisectAborted, match=r"harness bug .*RuntimeError: oops"):
        bisect.start(config(repo, tmp_path, shas[0], shas[8]),
                     FakeKernel(repo, raise_on=boom), quiet)
    assert (repo / ".git" / "BISECT_START").is_file()  # left in place for --resume
    assert "git bisect bad" in git(repo, "bisect", "log")
    assert "git bisect skip" not in git(repo, "bisect", "log")  # not poisoned


def test_same_infrastructure_error_twice_stops(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 16, bug_from=11)

    def boot_fails(call: int) -> BaseException | None:
        return HarnessError(f"guest did not boot in 180 s (run {call})") if call >= 3 else None

    with pytest.raises(BisectAborted, match="same infrastructure error at 2 steps"):
        bisect.start(config(repo, tmp_path, shas[0], shas[16]),
                     FakeKernel(repo, raise_on=boot_fails), quiet)
    # the first failure was a skip; the second stopped the bisect before git heard of it,
    # so that a resumed bisect tests that commit again
    state = bisect.load_state(repo)
    assert [r.verdict for r in state.records if r.role == "step"] == ["skip"]
    assert git(repo, "bisect", "log").count("git bisect skip") == 1


# --- bad input -------------------------------------------------------------------------


def test_not_a_git_repo(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a git repository"):
        bisect.start(config(tmp_path / "plain", tmp_path, "a", "b"), FakeKernel(tmp_path),
                     quiet)


def test_unknown_revision(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 3, bug_from=2)
    with pytest.raises(UsageError, match="unknown revision 'nope'"):
        bisect.start(config(repo, tmp_path, "nope", shas[3]), FakeKernel(repo), quiet)


def test_good_must_be_an_ancestor_of_bad(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 3, bug_from=2)
    with pytest.raises(UsageError, match="not an ancestor"):
        bisect.start(config(repo, tmp_path, shas[3], shas[0]), FakeKernel(repo), quiet)
    with pytest.raises(UsageError, match="--find-fix the bad end"):
        bisect.start(config(repo, tmp_path, shas[0], shas[3], find_fix=True),
                     FakeKernel(repo), quiet)
    with pytest.raises(UsageError, match="same commit"):
        bisect.start(config(repo, tmp_path, shas[1], shas[1]), FakeKernel(repo), quiet)


def test_uncommitted_changes_are_left_alone(tmp_path: Path) -> None:
    """Steps build commits from git's objects, so a dirty tree is no obstacle, and it is
    exactly as it was after the bisect."""
    repo = tmp_path / "repo"
    shas = make_repo(repo, 3, bug_from=2)
    (repo / "notes.txt").write_text("local edit\n")
    (repo / "bug").write_text("edited\n")
    before = git(repo, "status", "--porcelain")
    state = bisect.start(config(repo, tmp_path, shas[0], shas[3]), FakeKernel(repo), quiet)
    assert state.result is not None and state.result["commit"] == shas[2]
    assert git(repo, "status", "--porcelain") == before
    assert (repo / "bug").read_text() == "edited\n"


def test_trial_size_and_calibration_by_workload(tmp_path: Path) -> None:
    scenario = BisectConfig(repo=tmp_path, good="a", bad="b", arch="aarch64")
    assert (scenario.iterations_per_trial, scenario.calibration_trials) == (
        bisect.TRIAL_ITERATIONS, bisect.CALIBRATION_TRIALS)
    mine = BisectConfig(repo=tmp_path, good="a", bad="b", arch="aarch64",
                        trial_iterations=25, calibration_batches=6)
    assert (mine.iterations_per_trial, mine.calibration_trials) == (25, 6)
    repro = BisectConfig(repo=tmp_path, good="a", bad="b", arch="aarch64",
                         exec_command="true")
    assert (repro.iterations_per_trial, repro.calibration_trials) == (
        1, bisect.REPRO_CALIBRATION_TRIALS)
    # A state written before trials were sized was planned in batches of 25.
    old = {k: v for k, v in scenario.to_dict().items() if k != "trial_iterations"}
    assert BisectConfig.from_dict(old).iterations_per_trial == bisect.BATCH_ITERATIONS


def test_trial_iterations_with_a_reproducer_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 3, bug_from=2)
    with pytest.raises(UsageError, match="one run is a trial"):
        bisect.start(config(repo, tmp_path, shas[0], shas[3], exec_command="true",
                            trial_iterations=5), FakeKernel(repo), quiet)
    with pytest.raises(UsageError, match="--trial-iterations must be at least 1"):
        bisect.start(config(repo, tmp_path, shas[0], shas[3], trial_iterations=0),
                     FakeKernel(repo), quiet)


def test_bad_end_that_does_not_reproduce(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 6, bug_from=None)  # no bug anywhere (like x86_64)
    with pytest.raises(UsageError) as e:
        bisect.start(config(repo, tmp_path, shas[0], shas[6]), FakeKernel(repo), quiet)
    assert "did not reproduce in 750 iterations" in str(e.value)
    assert "no bisect on a non-reproducing bug" in str(e.value)
    assert not (repo / ".git" / "BISECT_START").exists()  # the repo is left as it was
    assert not (repo / ".git" / bisect.STATE_NAME).exists()
    assert git(repo, "rev-parse", "HEAD") == shas[6]  # back on the branch
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"


def test_good_end_that_shows_the_bug(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 4, bug_from=0)
    with pytest.raises(UsageError, match=r"the good end .* shows the bug"):
        bisect.start(config(repo, tmp_path, shas[0], shas[4]), FakeKernel(repo, p=0.9),
                     quiet)
    assert not (repo / ".git" / "BISECT_START").exists()


def test_resume_without_a_bisect(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, 2, bug_from=1)
    with pytest.raises(UsageError, match="no oomrace bisect to resume"):
        bisect.resume(repo, lambda c: FakeKernel(repo), quiet)


def oomrace(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_errors(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = make_repo(repo, 3, bug_from=2)
    r = oomrace("bisect", "--repo", str(repo), "--good", shas[0])
    assert r.returncode == 2 and "bisect needs --bad, --arch" in r.stderr
    r = oomrace("bisect", "--repo", str(tmp_path), "--good", "a", "--bad", "b",
                "--arch", "aarch64")
    assert r.returncode == 2 and "not a git repository" in r.stderr
    r = oomrace("bisect", "--repo", str(repo), "--good", shas[3], "--bad", shas[0],
                "--arch", "aarch64")
    assert r.returncode == 2 and "not an ancestor" in r.stderr
    r = oomrace("bisect", "--repo", str(repo), "--resume")
    assert r.returncode == 2 and "no oomrace bisect to resume" in r.stderr
    r = oomrace("bisect", "--repo", str(repo), "--good", shas[0], "--bad", shas[3],
                "--arch", "aarch64", "--host-cpus", "-1")
    assert r.returncode == 2 and "--host-cpus must be >= 0" in r.stderr


def test_host_cpus_in_the_config(tmp_path: Path) -> None:
    cfg = BisectConfig(repo=tmp_path, good="a", bad="b", arch="aarch64", host_cpus=1)
    assert BisectConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).host_cpus == 1
    old = {k: v for k, v in cfg.to_dict().items() if k != "host_cpus"}
    assert BisectConfig.from_dict(old).host_cpus == 0  # what states from before ran with


def test_a_step_runs_batches_of_the_trial_size(tmp_path: Path) -> None:
    """The size reaches the stress workload through RunSpec (KernelStepRunner sets it)."""
    from harness import run
    from harness.arches import get_arch
    from harness.kernel.image import KernelImage, ResolvedKernel
    from harness.workload import BATCH_ITERATIONS, StressWorkload

    image = KernelImage(path=tmp_path / "Image", arch=get_arch("aarch64"), description="fake")
    kernel = ResolvedKernel("fake", get_arch("aarch64"), image)
    work = run.RunSpec(kernel=kernel, scenario="mrelease", iterations=40,
                       batch_iterations=5).workload()
    assert isinstance(work, StressWorkload) and work.batch_iterations == 5
    default = run.RunSpec(kernel=kernel, scenario="mrelease").workload()
    assert isinstance(default, StressWorkload)
    assert default.batch_iterations == BATCH_ITERATIONS  # `run` and `lab` keep 25
