"""The bisect itself: calibrate on the bad end, confirm the good end, let git bisect."""

from __future__ import annotations

import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TextIO

from ..errors import HarnessError, MissingToolError, UsageError, error_key, first_line
from .git import Git
from .state import (
    BisectConfig,
    BisectResult,
    BisectState,
    Calibration,
    Phase,
    Plan,
    StepRecord,
    load_state,
    save_state,
    state_path,
)
from .stats import (
    BATCH_SECONDS,
    bisect_confidence,
    calibration_bounds,
    good_verdicts_bound,
    needed_trials,
    overall_confidence,
    per_verdict_confidence,
    step_confidence,
    verdicts_confidence,
)
from .steps import (
    Printer,
    Signature,
    StepOutcome,
    StepRequest,
    StepRunner,
    classify,
)

SAME_INFRA_ERRORS_LIMIT = 2  # this many identical infrastructure errors in a row: stop


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
        key = error_key(outcome.error)
        if self._same_errors and self._same_errors[-1] != key:
            self._same_errors.clear()
        self._same_errors.append(key)
        if len(self._same_errors) >= SAME_INFRA_ERRORS_LIMIT:
            self._save()
            raise BisectAborted(
                f"the same infrastructure error at {len(self._same_errors)} steps in a row: "
                f"{first_line(outcome.error)}\nThis looks like a harness or host problem, "
                f"not a property of the commits: the bisect stops here (it is left in place; "
                f"fix the problem and run `oomrace bisect --repo {self.config.repo} --resume`)"
            )

    # -- phases --

    def calibrate(self) -> None:
        cfg, st = self.config, self.state
        sha = st.bad_sha
        self.out(f"calibrating on the bad end {sha[:12]} ({self.git.subject(sha)}): "
                 f"{cfg.calibration_trials} trials of {cfg.iterations_per_trial} "
                 f"iteration(s) of {cfg.workload}")
        workdir = self._workdir("bad-end", sha)
        outcome = self._run_step(StepRequest(sha, workdir, cfg.calibration_trials,
                                             stop_on_first=False, seed=cfg.seed))
        if outcome.kind == "build_failed":
            raise UsageError(f"the bad end {sha[:12]} does not build: "
                             f"{first_line(outcome.error)}")
        repro = cfg.reproducer() is not None
        if outcome.detections == 0 and not outcome.checker_corruptions \
                and not outcome.corruption_titles and not outcome.failures:
            if outcome.kind == "error":
                raise UsageError(f"the bad end {sha[:12]} could not be tested: "
                                 f"{first_line(outcome.error)}")
            raise UsageError(
                f"the bad end {sha[:12]} did not reproduce in {outcome.iterations} iterations "
                f"({outcome.trials} trials of {cfg.workload} on {cfg.arch}): no bisect on a "
                f"non-reproducing bug (console log: {outcome.console_log})")
        # A user's reproducer: its exit code and any kernel report (an oops, a hang
        # report) are the bug; for our scenarios only corruption is.
        titles = [*outcome.corruption_titles, *(outcome.crash_titles if repro else [])]
        signature = Signature(outcome.checker_corruptions > 0, tuple(dict.fromkeys(titles)),
                              failure=outcome.failures > 0, crashes=repro)
        trials = max(outcome.trials, outcome.detections, 1)
        detections = max(outcome.detections, 1)
        bounds = calibration_bounds(detections, trials, cfg.confidence)
        st.signature = signature
        st.calibration = cal = Calibration(
            sha, bounds, iterations=outcome.iterations,
            first_detection_seconds=outcome.first_detection_seconds,
            build_seconds=outcome.build_seconds, boot_seconds=outcome.boot_seconds,
            trial_seconds=outcome.trial_seconds, console_log=outcome.console_log)
        st.records.append(StepRecord(sha, self.git.subject(sha), "bad-end", "bad",
                                     "calibration", outcome, cfg.calibration_trials,
                                     marked=False, workdir=str(workdir)))
        plan = st.plan = self._plan(cal)
        st.phase = Phase.CONFIRMING
        self._save()
        low, high = bounds.interval95 or (bounds.p_low, bounds.p_high)
        self.out(f"  signature: {signature.describe()}\n"
                 f"  detection rate p = {detections}/{trials} = {detections / trials:.2f} "
                 f"per trial, 95% interval [{low:.2f}, {high:.2f}]; a good verdict assumes "
                 f"p >= {bounds.p_low:.3f} (one-sided Clopper-Pearson, {bounds.level:.3f})\n"
                 f"  plan: a good verdict needs {plan.trials_per_good} clean trials "
                 f"({plan.trials_per_good * cfg.iterations_per_trial} iterations), per-verdict "
                 f"confidence {plan.per_verdict_confidence:.4f}; {st.commits_in_range} "
                 f"commits in range, ~{plan.expected_steps} steps, expected cost "
                 f"<= {plan.expected_seconds / 60:.1f} min")

    def _plan(self, cal: Calibration) -> Plan:
        cfg, st = self.config, self.state
        bound = good_verdicts_bound(st.commits_in_range)
        # The calibration's bound takes its share of the error budget (stats.py): the
        # good verdicts together must reach C / (its level), each the g-th root of that.
        per = per_verdict_confidence(verdicts_confidence(cfg.confidence), bound)
        n = needed_trials(cal.bounds.p_low, per)
        capped = False
        if cfg.max_iterations_per_step is not None:
            cap = max(1, cfg.max_iterations_per_step // cfg.iterations_per_trial)
            if n > cap:
                n, capped = cap, True
        steps = bound - 2
        trial_s = cal.trial_seconds or BATCH_SECONDS
        per_step = (cal.build_seconds or 60.0) + (cal.boot_seconds or 10.0) + n * trial_s
        if capped:
            self.out(f"warning: --max-iterations-per-step caps a good verdict at {n} trials; "
                     f"the overall confidence will be below {cfg.confidence}")
        return Plan(trials_per_good=n, good_verdicts_bound=bound, per_verdict_confidence=per,
                    capped_by_max_iterations=capped, expected_steps=steps,
                    expected_seconds=round((steps + 1) * per_step, 1),
                    seconds_per_step=round(per_step, 1))

    def confirm_good_end(self) -> None:
        cfg, st = self.config, self.state
        sha = st.good_sha
        n = self._planned().trials_per_good
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
        conf = step_confidence(self._calibrated().bounds.p_low, outcome.trials)
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
        st.phase = Phase.BISECTING
        self._save()

    def _calibrated(self) -> Calibration:
        assert self.state.calibration is not None, "the bisect is past its calibration"
        return self.state.calibration

    def _planned(self) -> Plan:
        assert self.state.plan is not None, "the bisect is past its calibration"
        return self.state.plan

    def _finished(self) -> _Found | None:
        log = self.git.bisect_log()
        new = self.config.terms[1]
        m = re.search(rf"^# first {re.escape(new)} commit: \[([0-9a-f]+)\] ?(.*)$", log, re.M)
        if m:
            return _Found(m.group(1), m.group(2), (m.group(1),))
        if "# only skipped commits left to test" in log:
            cands = re.findall(rf"^# possible first {re.escape(new)} commit: \[([0-9a-f]+)\]",
                               log, re.M)
            return _Found(None, None, tuple(cands))
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
        n = self._planned().trials_per_good
        p_low = self._calibrated().bounds.p_low
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
            sha = self.git.bisect_head()
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
        found = self._finished() or _Found(None, None, ())
        bounds = self._calibrated().bounds
        goods = [r.outcome.trials for r in st.records if r.verdict == "good"]
        subject = found.subject
        if found.commit and not subject:
            subject = self.git.subject(found.commit)
        st.result = BisectResult(
            commit=found.commit, subject=subject, candidates=found.candidates,
            confidence=bisect_confidence(bounds, goods),
            confidence_point_estimate=overall_confidence(bounds.p, goods),
            requested_confidence=cfg.confidence, kind="fix" if cfg.find_fix else "regression")
        st.phase = Phase.DONE
        self._save()

    def run(self) -> BisectState:
        if self.state.phase == Phase.CALIBRATING:
            self.calibrate()
        if self.state.phase == Phase.CONFIRMING:
            self.confirm_good_end()
        if self.state.phase == Phase.BISECTING:
            self.bisect_loop()
        return self.state


class _Found(NamedTuple):
    """What git's bisect log says it found."""

    commit: str | None
    subject: str | None
    candidates: tuple[str, ...]


# --- starting and resuming ----------------------------------------------------------


def validate(cfg: BisectConfig) -> tuple[Git, str, str, int]:
    """UsageError unless `cfg` can start a bisect here; the repository, both ends as
    commits and the number of commits between them."""
    repo = cfg.repo
    if not repo.is_dir():
        raise UsageError(f"--repo {repo} is not a directory")
    git = Git(repo)
    proc = git.run("rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0 or Path(proc.stdout.strip()).resolve() != repo.resolve():
        raise UsageError(f"--repo {repo} is not a git repository (its top level)")
    if not 0 < cfg.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1, not {cfg.confidence}")
    if cfg.calibration_trials < 1:
        raise UsageError("--calibration-batches must be at least 1")
    if cfg.host_cpus < 0:
        raise UsageError("--host-cpus must be >= 0 (0: all host CPUs)")
    if cfg.trial_iterations is not None and cfg.trial_iterations < 1:
        raise UsageError("--trial-iterations must be at least 1")
    if cfg.trial_iterations is not None and cfg.reproducer():
        raise UsageError("--trial-iterations sizes a scenario's trials; with --exec or "
                         "--repro one run is a trial (drop --trial-iterations)")
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
    # No check for uncommitted changes: the bisect never checks out (--no-checkout) and
    # each step builds its commit from git's objects, so the working tree is left alone.
    return git, good, bad, count


def start(cfg: BisectConfig, runner: StepRunner, out: Printer | None = None) -> BisectState:
    """Validate, `git bisect start`, calibrate, confirm the good end, bisect."""
    cfg = replace(cfg, repo=cfg.repo.resolve(), artifacts=cfg.artifacts.resolve())
    git, good, bad, count = validate(cfg)
    cfg.artifacts.mkdir(parents=True, exist_ok=True)
    state = BisectState(cfg, good, bad, count,
                        started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    old, new = cfg.terms
    # --no-checkout: git only records the commit to test (BISECT_HEAD); each step is
    # built in our own clone, so the user's working tree never moves.
    git.run("bisect", "start", "--no-checkout",
            *([f"--term-old={old}", f"--term-new={new}"] if cfg.find_fix else []))
    save_state(state)
    bisector = Bisector(state, runner, out)
    try:
        return bisector.run()
    except UsageError:
        # A bad end that does not reproduce (or a good end that is not good): leave the
        # repository as it was.
        if state.phase in (Phase.CALIBRATING, Phase.CONFIRMING):
            git.run("bisect", "reset", check=False)
            state_path(cfg.repo).unlink(missing_ok=True)
        raise


def resume(repo: Path, runner_for: Callable[[BisectConfig], StepRunner],
           out: Printer | None = None) -> BisectState:
    state = load_state(repo.resolve())
    git = Git(state.config.repo)
    if state.phase != Phase.DONE and not git.bisecting():
        raise UsageError(f"{repo} has an oomrace bisect state but git is not bisecting "
                         f"(was `git bisect reset` run?); remove {state_path(repo)} "
                         "and start again")
    return Bisector(state, runner_for(state.config), out).run()
