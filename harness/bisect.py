"""`oomrace bisect`: find the commit that introduced (or fixed) a flaky kernel bug, with
real `git bisect` and a statistical stopping rule.

The bisect is driven from Python with git's own state: `git bisect start`, then
`git bisect <term> <rev>` for the ends; git checks out the commit it wants tested next,
we build and test it, and tell git `good`, `bad` or `skip`. `git bisect log` and
`git bisect replay` therefore work as usual, and Ctrl-C leaves the repository in its
bisect state; `oomrace bisect --resume` continues from our state file in the git dir.

Statistics. A trial is one stress batch (25 iterations of the scenario on one booted
guest, see workload.StressWorkload), a Bernoulli trial: did the bug's signature show?

* Calibration: the bad end runs for a fixed number of batches. k of n batches showing
  the bug give p = k/n and a 95% Wilson interval [p_low, p_high]. The first detection
  fixes the bug's *signature*: "checker corruption" and the kernel's corruption report
  titles. Later steps count only a match of the signature (equal titles, or the same
  title family: the part before " in ").
* A commit is bad as soon as the signature shows. It is good only after n clean trials
  with (1 - p_low)^n <= 1 - c, where c is the per-verdict confidence. The lower end of
  p's interval is used: with it, a buggy commit passes as good with probability <= 1 - c.
* Every good verdict can be wrong, and the bisect's answer is right when all of them
  are, so the overall confidence is the product over good verdicts (the good end's
  confirmation included) of 1 - (1 - p_low)^n_i. To reach the requested confidence C
  overall, each verdict asks for c = C^(1/g), where g bounds the number of good
  verdicts: ceil(log2(commits in range)) bisect steps + the good end + one spare (for
  a neighbour tested after a skip).
* Build failures, boot failures and harness errors make a step a skip; so does a crash
  or a corruption that does not match the signature (recorded in the step). The same
  infrastructure error at two steps in a row, or an exception that is not a
  HarnessError, stops the bisect (a harness problem must not become a verdict).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from . import atomicio, kbuild, kernels, proc, schema, signals, verdict
from .arches import get_arch
from .errors import HarnessError, KernelError, MissingToolError, UsageError
from .kernels import ResolvedKernel
from .machine import MachineOptions
from .verdict import title_family

STATE_NAME = "oomrace-bisect.json"
STATE_VERSION = 1
BATCH_ITERATIONS = 25  # iterations per trial: StressWorkload's batch
BATCH_SECONDS = 10.0  # StressWorkload's cap on one batch
SAME_INFRA_ERRORS_LIMIT = 2  # this many identical infrastructure errors in a row: stop

StepKind = Literal["ran", "build_failed", "error"]
Verdict = Literal["bad", "good", "skip"]


# --- statistics ----------------------------------------------------------------------


def needed_trials(p_low: float, confidence: float) -> int:
    """Fewest clean trials n with (1 - p_low)^n <= 1 - confidence."""
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1 (exclusive), not {confidence}")
    if p_low <= 0:
        raise UsageError("the detection rate's lower bound is 0: no number of clean trials "
                         "would make a good verdict trustworthy")
    if p_low >= 1:
        return 1
    n = math.log(1 - confidence) / math.log(1 - p_low)
    # guard against floating point just above an integer
    return max(1, math.ceil(n - 1e-9))


def step_confidence(p: float, trials: int) -> float:
    """Probability that a buggy commit would have shown the bug in `trials` trials."""
    return 1.0 - (1.0 - p) ** trials if trials > 0 else 0.0


def overall_confidence(p: float, good_trials: list[int]) -> float:
    """Product over good verdicts of 1 - (1 - p)^n_i."""
    product = 1.0
    for n in good_trials:
        product *= step_confidence(p, n)
    return product


def good_verdicts_bound(commits_in_range: int) -> int:
    """How many good verdicts a bisect of this range may need: the steps git takes,
    the good end's confirmation and one spare for a skip's neighbour."""
    steps = max(1, math.ceil(math.log2(max(2, commits_in_range))))
    return steps + 2


def per_verdict_confidence(confidence: float, verdicts: int) -> float:
    return float(confidence ** (1.0 / max(1, verdicts)))


# --- signatures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """What the bug looks like: checker corruption and/or kernel corruption titles."""

    checker: bool
    titles: tuple[str, ...]

    def matches(self, checker_corruptions: int, titles: list[str]) -> bool:
        if self.checker and checker_corruptions > 0:
            return True
        families = {title_family(t) for t in self.titles}
        return any(t in self.titles or title_family(t) in families for t in titles)

    def describe(self) -> str:
        parts = (["checker corruption"] if self.checker else []) + list(self.titles)
        return " | ".join(parts) or "(none)"


# --- steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRequest:
    """What a step runner is asked: test the checked-out `commit` for up to `trials`
    trials (batches), stopping at the first detection when `stop_on_first`."""

    commit: str
    workdir: Path
    trials: int
    stop_on_first: bool = True
    seed: int | None = None


@dataclass
class StepOutcome:
    """What a step runner saw: raw evidence; the bisect decides the verdict."""

    kind: StepKind  # ran | build_failed | error (boot failure, harness error)
    trials: int = 0
    detections: int = 0  # trials in which corruption showed (any signature)
    iterations: int = 0
    checker_corruptions: int = 0
    corruption_titles: list[str] = field(default_factory=list)
    crash_titles: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    build_seconds: float = 0.0
    boot_seconds: float | None = None
    trial_seconds: float | None = None  # mean seconds per trial
    first_detection_seconds: float | None = None
    console_log: str | None = None
    kernel: str | None = None  # the image booted
    kernel_built: bool | None = None  # built by this step (False: found in the cache)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepOutcome:
        d = dict(d)
        kernel = d.get("kernel") or ""
        if "kernel_built" not in d and kernel.startswith(("built:", "cached:")):
            # A state file from before kernel_built: the kernel was "built:PATH".
            how, d["kernel"] = kernel.split(":", 1)
            d["kernel_built"] = how == "built"
        return cls(**d)


StepRunner = Callable[[StepRequest], StepOutcome]


class Printer(Protocol):
    def __call__(self, text: str) -> None: ...


def classify(outcome: StepOutcome, signature: Signature, noise: set[str],
             needed: int) -> tuple[Verdict, str]:
    """A step's verdict from its evidence: bad on a signature match, good after `needed`
    clean trials, skip otherwise."""
    if outcome.kind == "build_failed":
        m = re.search(r"^.*\berror\b:.*$", outcome.error or "", re.M | re.I)
        return "skip", f"build failed: {(m.group(0) if m else _first_line(outcome.error))[:200]}"
    if signature.matches(outcome.checker_corruptions, outcome.corruption_titles):
        what = next((t for t in outcome.corruption_titles
                     if signature.matches(0, [t])), "checker corruption")
        return "bad", f"signature seen: {what}"
    unrelated = [t for t in [*outcome.corruption_titles, *outcome.crash_titles]
                 if t not in noise]
    if unrelated:
        return "skip", f"unrelated report: {unrelated[0]}"
    if outcome.checker_corruptions or outcome.detections:
        return "skip", "corruption that does not match the signature"
    if outcome.kind == "error":
        return "skip", f"harness/boot error: {_first_line(outcome.error)}"
    if outcome.trials <= 0:
        return "skip", "no trial ran"
    if outcome.trials < needed:
        return "good", f"clean in {outcome.trials} trials (fewer than the {needed} planned)"
    return "good", f"clean in {outcome.trials} trials"


def _first_line(text: str | None) -> str:
    return (text or "unknown error").strip().splitlines()[0] if text and text.strip() \
        else "unknown error"


def _normalise_error(text: str | None) -> str:
    line = _first_line(text)
    line = re.sub(r"/\S+", "PATH", line)
    return re.sub(r"\b(0x)?[0-9a-f]*[0-9][0-9a-f]*\b", "N", line)


# --- git -----------------------------------------------------------------------------


GIT_TIMEOUT = 3600.0
"""Seconds a git command may take: a checkout across kernel releases on a slow disk."""


class Git:
    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, check: bool = True) -> proc.Completed:
        # SIGTERM/SIGHUP wait for git to finish: cut short, it would be killed and could
        # leave the user's repository half checked out with index.lock behind.
        with signals.deferred():
            done = proc.run(["git", "-C", str(self.repo), *args], check=False,
                            timeout=GIT_TIMEOUT)
        if check and done.returncode != 0:
            raise HarnessError(f"git {' '.join(args)} failed ({done.returncode}) in "
                               f"{self.repo}: {(done.stderr or done.stdout).strip()}")
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def git_dir(self) -> Path:
        path = Path(self.out("rev-parse", "--absolute-git-dir"))
        return path

    def commit(self, rev: str) -> str:
        proc = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise UsageError(f"unknown revision {rev!r} in {self.repo}")
        return proc.stdout.strip()

    def subject(self, sha: str) -> str:
        return self.out("log", "-1", "--format=%s", sha)

    def is_ancestor(self, a: str, b: str) -> bool:
        return self.run("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    def head(self) -> str:
        return self.out("rev-parse", "HEAD")

    def dirty(self) -> str:
        return self.out("status", "--porcelain", "--untracked-files=normal")

    def bisecting(self) -> bool:
        return (self.git_dir() / "BISECT_START").is_file()

    def bisect_log(self) -> str:
        path = self.git_dir() / "BISECT_LOG"
        return path.read_text(errors="replace") if path.is_file() else ""


# --- configuration and state ---------------------------------------------------------


@dataclass
class BisectConfig:
    repo: Path
    good: str
    bad: str  # the end where the bug shows (for --find-fix the older end)
    arch: str
    scenario: str = "mrelease"
    recipe_config: str = "v6.1"
    confidence: float = 0.95
    max_iterations_per_step: int | None = None
    calibration_batches: int = 6
    find_fix: bool = False
    artifacts: Path = Path("oomrace-artifacts")
    cpus: int = 8
    memory_mb: int = 1024
    seed: int | None = 1

    @property
    def terms(self) -> tuple[str, str]:
        """(old, new) git bisect terms."""
        return ("broken", "fixed") if self.find_fix else ("good", "bad")

    @property
    def bug_term(self) -> str:
        """The term for a commit where the bug shows."""
        return self.terms[0] if self.find_fix else self.terms[1]

    @property
    def clean_term(self) -> str:
        return self.terms[1] if self.find_fix else self.terms[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["repo"], d["artifacts"] = str(self.repo), str(self.artifacts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BisectConfig:
        d = dict(d)
        d["repo"], d["artifacts"] = Path(d["repo"]), Path(d["artifacts"])
        return cls(**d)


@dataclass
class StepRecord:
    commit: str
    subject: str
    role: str  # bad-end | good-end | step
    verdict: str  # bad | good | skip
    reason: str
    outcome: StepOutcome
    planned_trials: int
    confidence: float | None = None  # for good verdicts: 1 - (1 - p_low)^n
    marked: bool = False
    workdir: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepRecord:
        d = dict(d)
        d["outcome"] = StepOutcome.from_dict(d["outcome"])
        return cls(**d)


@dataclass
class BisectState:
    config: BisectConfig
    good_sha: str
    bad_sha: str
    commits_in_range: int
    started_at: str
    phase: str = "calibrating"  # calibrating | confirming | bisecting | done
    calibration: dict[str, Any] | None = None
    signature: Signature | None = None
    noise: list[str] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    records: list[StepRecord] = field(default_factory=list)
    result: dict[str, Any] | None = None
    seconds: float = 0.0  # wall time spent over all sessions

    def to_dict(self) -> dict[str, Any]:
        return schema.versioned({
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "good": self.good_sha, "bad": self.bad_sha,
            "commits_in_range": self.commits_in_range,
            "started_at": self.started_at, "phase": self.phase,
            "calibration": self.calibration,
            "signature": asdict(self.signature) if self.signature else None,
            "noise": self.noise, "plan": self.plan,
            "steps": [r.to_dict() for r in self.records],
            "result": self.result, "seconds": round(self.seconds, 1),
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BisectState:
        schema.check_version(d, "the bisect state")
        if d.get("version") != STATE_VERSION:
            raise UsageError(f"bisect state version {d.get('version')} is not "
                             f"{STATE_VERSION}; start again after `git bisect reset`")
        sig = d.get("signature")
        return cls(
            config=BisectConfig.from_dict(d["config"]), good_sha=d["good"], bad_sha=d["bad"],
            commits_in_range=d["commits_in_range"], started_at=d["started_at"],
            phase=d["phase"], calibration=d.get("calibration"),
            signature=Signature(sig["checker"], tuple(sig["titles"])) if sig else None,
            noise=list(d.get("noise", [])), plan=d.get("plan"),
            records=[StepRecord.from_dict(r) for r in d.get("steps", [])],
            result=d.get("result"), seconds=float(d.get("seconds", 0.0)),
        )


def state_path(repo: Path) -> Path:
    return Git(repo).git_dir() / STATE_NAME


def load_state(repo: Path) -> BisectState:
    path = state_path(repo)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return BisectState.from_dict(data)
    except FileNotFoundError:
        raise UsageError(f"no oomrace bisect to resume in {repo} ({path} is missing)") from None
    # Valid JSON of another shape fails in from_dict with any of these.
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise UsageError(f"{path} is not a readable bisect state ({e}); "
                         "run `git bisect reset` and start again") from None


def save_state(state: BisectState) -> None:
    atomicio.write_json(state_path(state.config.repo), state.to_dict())


# --- the bisect ----------------------------------------------------------------------


class BisectAborted(HarnessError):
    """The bisect stopped on a harness problem; the repository keeps its bisect state."""


def _stdout_printer(stream: TextIO | None = None) -> Printer:
    def emit(text: str) -> None:
        print(text, file=stream or sys.stdout, flush=True)

    return emit


class Bisector:
    def __init__(self, state: BisectState, runner: StepRunner,
                 out: Printer | None = None) -> None:
        self.state = state
        self.config = state.config
        self.git = Git(state.config.repo)
        self.runner = runner
        self.out = out or _stdout_printer()
        self._session_start = time.monotonic()
        self._same_errors: list[str] = []

    # -- plumbing --

    def _save(self) -> None:
        now = time.monotonic()
        self.state.seconds += now - self._session_start
        self._session_start = now
        save_state(self.state)

    def _workdir(self, role: str, sha: str) -> Path:
        index = len(self.state.records)
        path = self.config.artifacts / f"{index:02d}-{role}-{sha[:12]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _checkout(self, sha: str) -> None:
        self.git.run("checkout", "-q", "--detach", sha)

    def _run_step(self, request: StepRequest) -> StepOutcome:
        try:
            return self.runner(request)
        except (KeyboardInterrupt, BisectAborted, UsageError, MissingToolError):
            raise
        except HarnessError as e:
            return StepOutcome(kind="error", error=f"{type(e).__name__}: {e}")
        except Exception as e:
            self._save()
            trace = "".join(traceback.format_exception(e)[-6:])
            raise BisectAborted(
                f"harness bug while testing {request.commit[:12]} (not a verdict on the "
                f"commit): {type(e).__name__}: {e}\n{trace}\nThe bisect is left in place: "
                f"fix the harness, then `oomrace bisect --repo {self.config.repo} --resume`"
            ) from e

    def _check_infra(self, outcome: StepOutcome) -> None:
        if outcome.kind != "error" or outcome.trials > 0:
            self._same_errors.clear()
            return
        key = _normalise_error(outcome.error)
        if self._same_errors and self._same_errors[-1] != key:
            self._same_errors.clear()
        self._same_errors.append(key)
        if len(self._same_errors) >= SAME_INFRA_ERRORS_LIMIT:
            self._save()
            raise BisectAborted(
                f"the same infrastructure error at {len(self._same_errors)} steps in a row: "
                f"{_first_line(outcome.error)}\nThis looks like a harness or host problem, "
                f"not a property of the commits: the bisect stops here (it is left in place; "
                f"fix the problem and run `oomrace bisect --repo {self.config.repo} --resume`)"
            )

    # -- phases --

    def calibrate(self) -> None:
        cfg, st = self.config, self.state
        sha = st.bad_sha
        self._checkout(sha)
        self.out(f"calibrating on the bad end {sha[:12]} ({self.git.subject(sha)}): "
                 f"{cfg.calibration_batches} trials of {BATCH_ITERATIONS} iterations")
        workdir = self._workdir("bad-end", sha)
        outcome = self._run_step(StepRequest(sha, workdir, cfg.calibration_batches,
                                             stop_on_first=False, seed=cfg.seed))
        if outcome.kind == "build_failed":
            raise UsageError(f"the bad end {sha[:12]} does not build: "
                             f"{_first_line(outcome.error)}")
        if outcome.detections == 0 and not outcome.checker_corruptions \
                and not outcome.corruption_titles:
            if outcome.kind == "error":
                raise UsageError(f"the bad end {sha[:12]} could not be tested: "
                                 f"{_first_line(outcome.error)}")
            raise UsageError(
                f"the bad end {sha[:12]} did not reproduce in {outcome.iterations} iterations "
                f"({outcome.trials} trials of {cfg.scenario} on {cfg.arch}): no bisect on a "
                f"non-reproducing bug (console log: {outcome.console_log})")
        signature = Signature(outcome.checker_corruptions > 0,
                              tuple(dict.fromkeys(outcome.corruption_titles)))
        trials = max(outcome.trials, outcome.detections, 1)
        detections = max(outcome.detections, 1)
        low, high = verdict.wilson_interval(detections, trials)
        st.signature = signature
        st.calibration = {
            "commit": sha, "trials": trials, "detections": detections,
            "iterations": outcome.iterations, "p": detections / trials,
            "p_low": low, "p_high": high,
            "first_detection_seconds": outcome.first_detection_seconds,
            "build_seconds": outcome.build_seconds, "boot_seconds": outcome.boot_seconds,
            "trial_seconds": outcome.trial_seconds, "console_log": outcome.console_log,
        }
        st.records.append(StepRecord(sha, self.git.subject(sha), "bad-end", "bad",
                                     "calibration", outcome, cfg.calibration_batches,
                                     marked=False, workdir=str(workdir)))
        self._plan()
        st.phase = "confirming"
        self._save()
        plan = st.plan or {}
        self.out(f"  signature: {signature.describe()}\n"
                 f"  detection rate p = {detections}/{trials} = {detections / trials:.2f} "
                 f"per trial, 95% interval [{low:.2f}, {high:.2f}]\n"
                 f"  plan: a good verdict needs {plan['trials_per_good']} clean trials "
                 f"({plan['trials_per_good'] * BATCH_ITERATIONS} iterations), per-verdict "
                 f"confidence {plan['per_verdict_confidence']:.4f}; {st.commits_in_range} "
                 f"commits in range, ~{plan['expected_steps']} steps, expected cost "
                 f"<= {plan['expected_seconds'] / 60:.1f} min")

    def _plan(self) -> None:
        cfg, st = self.config, self.state
        cal = st.calibration or {}
        bound = good_verdicts_bound(st.commits_in_range)
        per = per_verdict_confidence(cfg.confidence, bound)
        n = needed_trials(float(cal["p_low"]), per)
        capped = False
        if cfg.max_iterations_per_step is not None:
            cap = max(1, cfg.max_iterations_per_step // BATCH_ITERATIONS)
            if n > cap:
                n, capped = cap, True
        steps = bound - 2
        trial_s = float(cal.get("trial_seconds") or BATCH_SECONDS)
        per_step = (float(cal.get("build_seconds") or 60.0)
                    + float(cal.get("boot_seconds") or 10.0) + n * trial_s)
        st.plan = {
            "good_verdicts_bound": bound, "per_verdict_confidence": per,
            "trials_per_good": n, "capped_by_max_iterations": capped,
            "expected_steps": steps, "expected_seconds": round((steps + 1) * per_step, 1),
            "seconds_per_step": round(per_step, 1),
        }
        if capped:
            self.out(f"warning: --max-iterations-per-step caps a good verdict at {n} trials; "
                     f"the overall confidence will be below {cfg.confidence}")

    def confirm_good_end(self) -> None:
        cfg, st = self.config, self.state
        sha = st.good_sha
        n = int((st.plan or {})["trials_per_good"])
        self._checkout(sha)
        self.out(f"confirming the good end {sha[:12]} ({self.git.subject(sha)}) is clean "
                 f"over {n} trials")
        workdir = self._workdir("good-end", sha)
        outcome = self._run_step(StepRequest(sha, workdir, n, seed=cfg.seed))
        assert st.signature is not None
        result, reason = classify(outcome, st.signature, set(), n)
        if result == "bad":
            raise UsageError(f"the good end {sha[:12]} shows the bug too ({reason}): "
                             "pick an older good end (or, for --find-fix, a newer one)")
        if outcome.kind != "ran" or outcome.trials == 0:
            raise UsageError(f"the good end {sha[:12]} could not be tested: {reason}")
        if result == "skip" and outcome.corruption_titles:
            raise UsageError(f"the good end {sha[:12]} shows another corruption ({reason})")
        # Reports the good end shows too (no corruption) are background noise.
        st.noise = sorted(set(outcome.crash_titles))
        conf = step_confidence(float((st.calibration or {})["p_low"]), outcome.trials)
        st.records.append(StepRecord(sha, self.git.subject(sha), "good-end", "good", reason,
                                     outcome, n, confidence=conf, workdir=str(workdir)))
        self.out(f"  good end clean in {outcome.trials} trials"
                 + (f" (background reports ignored from now on: {st.noise})"
                    if st.noise else ""))
        # Tell git about the ends: it checks out the first commit to test.
        self.git.run("bisect", cfg.bug_term, st.bad_sha)
        self.git.run("bisect", cfg.clean_term, st.good_sha)
        for record in st.records:
            record.marked = True
        st.phase = "bisecting"
        self._save()

    def _finished(self) -> dict[str, Any] | None:
        log = self.git.bisect_log()
        new = self.config.terms[1]
        m = re.search(rf"^# first {re.escape(new)} commit: \[([0-9a-f]+)\] ?(.*)$", log, re.M)
        if m:
            return {"commit": m.group(1), "subject": m.group(2), "candidates": [m.group(1)]}
        if "# only skipped commits left to test" in log:
            cands = re.findall(rf"^# possible first {re.escape(new)} commit: \[([0-9a-f]+)\]",
                               log, re.M)
            return {"commit": None, "subject": None, "candidates": cands}
        return None

    def _mark(self, record: StepRecord) -> None:
        term = {"bad": self.config.bug_term, "good": self.config.clean_term,
                "skip": "skip"}[record.verdict]
        proc = self.git.run("bisect", term, record.commit, check=False)
        if proc.returncode not in (0, 2):  # 2: only skipped commits left
            raise HarnessError(f"git bisect {term} {record.commit[:12]} failed: "
                               f"{(proc.stderr or proc.stdout).strip()}")
        record.marked = True
        self._save()

    def bisect_loop(self) -> None:
        cfg, st = self.config, self.state
        n = int((st.plan or {})["trials_per_good"])
        p_low = float((st.calibration or {})["p_low"])
        assert st.signature is not None
        for record in st.records:  # decided before an interruption, not yet told to git
            if not record.marked:
                self._mark(record)
        while self._finished() is None:
            proc = self.git.run("bisect", "next", check=False)
            if self._finished() is not None:
                break
            if proc.returncode != 0:
                raise HarnessError(f"git bisect next failed: {(proc.stderr or proc.stdout)}")
            sha = self.git.head()
            known = [r for r in st.records if r.commit == sha and r.role == "step"]
            if known:  # tested before an interruption
                self._mark(known[-1])
                continue
            subject = self.git.subject(sha)
            index = sum(1 for r in st.records if r.role == "step") + 1
            self.out(f"step {index}: {sha[:12]} {subject}")
            workdir = self._workdir("step", sha)
            outcome = self._run_step(StepRequest(sha, workdir, n, seed=cfg.seed))
            self._check_infra(outcome)
            result, reason = classify(outcome, st.signature, set(st.noise), n)
            conf = step_confidence(p_low, outcome.trials) if result == "good" else None
            record = StepRecord(sha, subject, "step", result, reason, outcome, n,
                                confidence=conf, workdir=str(workdir))
            st.records.append(record)
            self._save()
            self.out(f"  -> {result} ({reason}); {outcome.trials} trials, "
                     f"{outcome.iterations} iterations, {outcome.seconds:.0f} s")
            self._mark(record)
        self._conclude()

    def _conclude(self) -> None:
        st, cfg = self.state, self.config
        found = self._finished() or {"commit": None, "subject": None, "candidates": []}
        cal = st.calibration or {}
        goods = [r.outcome.trials for r in st.records if r.verdict == "good"]
        found["confidence"] = overall_confidence(float(cal["p_low"]), goods)
        found["confidence_point_estimate"] = overall_confidence(float(cal["p"]), goods)
        found["requested_confidence"] = cfg.confidence
        found["kind"] = "fix" if cfg.find_fix else "regression"
        if found["commit"] and not found["subject"]:
            found["subject"] = self.git.subject(str(found["commit"]))
        st.result = found
        st.phase = "done"
        self._save()

    def run(self) -> BisectState:
        if self.state.phase == "calibrating":
            self.calibrate()
        if self.state.phase == "confirming":
            self.confirm_good_end()
        if self.state.phase == "bisecting":
            self.bisect_loop()
        return self.state


# --- starting, resuming, reporting -----------------------------------------------------


def _validate(cfg: BisectConfig) -> tuple[Git, str, str, int]:
    repo = cfg.repo
    if not repo.is_dir():
        raise UsageError(f"--repo {repo} is not a directory")
    git = Git(repo)
    proc = git.run("rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0 or Path(proc.stdout.strip()).resolve() != repo.resolve():
        raise UsageError(f"--repo {repo} is not a git repository (its top level)")
    if not 0 < cfg.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1, not {cfg.confidence}")
    if cfg.calibration_batches < 1:
        raise UsageError("--calibration-batches must be at least 1")
    if cfg.max_iterations_per_step is not None and cfg.max_iterations_per_step < 1:
        raise UsageError("--max-iterations-per-step must be at least 1")
    try:  # now, not after `git bisect start` and the first build
        cfg.artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--artifacts {cfg.artifacts}: cannot create it ({e.strerror}); "
                         "give a folder you can write to") from None
    good, bad = git.commit(cfg.good), git.commit(cfg.bad)
    if good == bad:
        raise UsageError(f"--good and --bad are the same commit ({good[:12]})")
    if cfg.find_fix:
        if not git.is_ancestor(bad, good):
            raise UsageError(f"with --find-fix the bad end ({cfg.bad}, where the bug shows) "
                             f"must be an ancestor of the good end ({cfg.good}, where it is "
                             "fixed)")
        count = int(git.out("rev-list", "--count", f"{bad}..{good}"))
    else:
        if not git.is_ancestor(good, bad):
            raise UsageError(f"the good end ({cfg.good}) is not an ancestor of the bad end "
                             f"({cfg.bad}); to find the commit that fixed a bug, use "
                             "--find-fix")
        count = int(git.out("rev-list", "--count", f"{good}..{bad}"))
    if git.bisecting():
        raise UsageError(f"a git bisect is already in progress in {repo}: continue it with "
                         "`oomrace bisect --resume` or end it with `git bisect reset`")
    dirty = git.dirty()
    if dirty:
        raise UsageError(f"the working tree of {repo} has uncommitted changes; commit or "
                         f"stash them first:\n{dirty[:2000]}")
    return git, good, bad, count


def start(cfg: BisectConfig, runner: StepRunner, out: Printer | None = None) -> BisectState:
    """Validate, `git bisect start`, calibrate, confirm the good end, bisect."""
    cfg = replace(cfg, repo=cfg.repo.resolve(), artifacts=cfg.artifacts.resolve())
    git, good, bad, count = _validate(cfg)
    cfg.artifacts.mkdir(parents=True, exist_ok=True)
    state = BisectState(cfg, good, bad, count,
                        started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    old, new = cfg.terms
    git.run("bisect", "start", *([f"--term-old={old}", f"--term-new={new}"]
                                 if cfg.find_fix else []))
    save_state(state)
    bisector = Bisector(state, runner, out)
    try:
        return bisector.run()
    except UsageError:
        # A bad end that does not reproduce (or a good end that is not good): leave the
        # repository as it was.
        if state.phase in ("calibrating", "confirming"):
            git.run("bisect", "reset", check=False)
            state_path(cfg.repo).unlink(missing_ok=True)
        raise


def resume(repo: Path, runner_for: Callable[[BisectConfig], StepRunner],
           out: Printer | None = None) -> BisectState:
    state = load_state(repo.resolve())
    git = Git(state.config.repo)
    if state.phase != "done":
        if not git.bisecting():
            raise UsageError(f"{repo} has an oomrace bisect state but git is not bisecting "
                             f"(was `git bisect reset` run?); remove {state_path(repo)} "
                             "and start again")
        dirty = git.dirty()
        if dirty:
            raise UsageError(f"the working tree of {repo} has uncommitted changes:\n"
                             f"{dirty[:2000]}")
    return Bisector(state, runner_for(state.config), out).run()


def kernel_builds(state: BisectState) -> int:
    """Kernel builds this bisect ran (cache hits not counted, failed builds counted)."""
    return sum(1 for r in state.records
               if r.outcome.kind == "build_failed" or r.outcome.kernel_built)


def report_json(state: BisectState) -> dict[str, Any]:
    d = state.to_dict()
    d["kernel_builds"] = kernel_builds(state)
    d["state_file"] = str(state_path(state.config.repo))
    return d


def report_text(state: BisectState) -> str:
    cfg, cal, res = state.config, state.calibration or {}, state.result or {}
    what = "first fixed commit" if cfg.find_fix else "first bad commit"
    lines = []
    if res.get("commit"):
        lines.append(f"{what}: {res['commit']} {res.get('subject') or ''}".rstrip())
    else:
        lines.append(f"{what}: could not be narrowed down (only skipped commits left); "
                     f"candidates: {', '.join(c[:12] for c in res.get('candidates', []))}")
    if res:
        lines.append(f"confidence: {res['confidence']:.4f} (requested {cfg.confidence}; "
                     f"{res['confidence_point_estimate']:.4f} with p's point estimate)")
    if cal:
        lines.append(f"detection rate p: {cal['detections']}/{cal['trials']} trials = "
                     f"{cal['p']:.2f}, 95% interval [{cal['p_low']:.2f}, {cal['p_high']:.2f}] "
                     f"(trial = {BATCH_ITERATIONS} iterations of {cfg.scenario} on "
                     f"{cfg.arch}, {cfg.cpus} vCPUs)")
    if state.signature:
        lines.append(f"signature: {state.signature.describe()}")
    lines.append(f"{'commit':<12}  {'role':<8}  {'verdict':<7}  {'trials':>6}  {'iter':>5}  "
                 f"{'det':>3}  {'time':>6}  reason / console log")
    for r in state.records:
        o = r.outcome
        lines.append(f"{r.commit[:12]:<12}  {r.role:<8}  {r.verdict:<7}  {o.trials:>6}  "
                     f"{o.iterations:>5}  {o.detections:>3}  {o.seconds:>5.0f}s  {r.reason}")
        lines.append(f"{'':<12}  {r.subject[:70]}  console: {o.console_log or '-'}")
    builds = kernel_builds(state)
    lines.append(f"wall time: {state.seconds / 60:.1f} min; kernel builds: {builds}; "
                 f"artifacts: {cfg.artifacts}")
    if state.phase == "done":
        lines.append(f"(the repository is still in git's bisect state: `git -C {cfg.repo} "
                     "bisect log` shows it, `git bisect reset` ends it)")
    return "\n".join(lines)


# --- the real step runner: build the checked-out commit, boot it, stress it ----------


@dataclass
class KernelStepRunner:
    """Builds the checked-out tree with the recipe's base/fragments/cmdline (not its
    patches) and runs the scenario on it."""

    config: BisectConfig
    progress: bool = True

    def __call__(self, request: StepRequest) -> StepOutcome:
        from .run import RunSpec, run_one  # booting pulls in much; keep imports lazy

        cfg = self.config
        recipe = replace(kbuild.load_recipe(cfg.recipe_config), patches=())
        started = time.monotonic()
        try:
            built = kbuild.build(recipe, cfg.arch, source_path=cfg.repo,
                                 progress=self.progress)
        except KernelError as e:
            return StepOutcome(kind="build_failed", error=str(e),
                               seconds=round(time.monotonic() - started, 1),
                               build_seconds=round(time.monotonic() - started, 1))
        build_s = round(time.monotonic() - started, 1)
        if built.source_identity != f"git:{request.commit}":
            raise BisectAborted(f"built {built.source_identity}, expected git:"
                                f"{request.commit} (did the working tree change?)")
        arch = get_arch(cfg.arch)
        options = MachineOptions(cpus=cfg.cpus, memory_mb=cfg.memory_mb,
                                 cmdline_extra=tuple(built.cmdline))
        iterations = request.trials * BATCH_ITERATIONS
        # The kernel just built, passed down as it is: run_one resolves nothing.
        kernel = ResolvedKernel(str(built.image), arch, kernels.from_build(built))
        spec = RunSpec(kernel=kernel, scenario=cfg.scenario,
                       options=options, iterations=iterations,
                       duration_s=request.trials * BATCH_SECONDS * 2 + 30,
                       seed=request.seed, stop_on_first_detection=request.stop_on_first)
        result = run_one(spec, request.workdir)
        work = result.stress
        titles = [r.title for r in result.reports]
        trials = work.trials if work else 0
        kind: StepKind = "error" if result.verdict == "error" or (
            result.error and not trials) else "ran"
        return StepOutcome(
            kind=kind, trials=trials, detections=work.detections if work else 0,
            iterations=work.iterations if work else 0,
            checker_corruptions=work.checker_corruptions if work else 0,
            corruption_titles=[t for t in titles if verdict.is_corruption_title(t)],
            crash_titles=[t for t in titles if not verdict.is_corruption_title(t)],
            error=result.error or (work.error if work else None),
            seconds=round(time.monotonic() - started, 1), build_seconds=build_s,
            boot_seconds=result.boot_seconds,
            trial_seconds=round(work.seconds / trials, 2) if work and trials else None,
            first_detection_seconds=work.first_detection_seconds if work else None,
            console_log=result.console_log, kernel=str(built.image),
            kernel_built=not built.cached,
        )
