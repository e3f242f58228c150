"""`oomrace bisect`: find the commit that introduced (or fixed) a flaky kernel bug, with
real `git bisect` and a statistical stopping rule.

The bisect is driven from Python with git's own state: `git bisect start --no-checkout`,
then `git bisect <term> <rev>` for the ends; git names the commit it wants tested next in
BISECT_HEAD (the user's working tree never moves), we build it in a build directory of
ours (kernel.build.incremental) and test it, and tell git `good`, `bad` or `skip`.
`git bisect log` and `git bisect replay` therefore work as usual, and Ctrl-C leaves the
repository in its bisect state; `oomrace bisect --resume` continues from our state file
in the git dir.

Statistics. A trial is one stress batch (5 iterations of the scenario on one booted
guest, see workload.StressWorkload; stats.TRIAL_ITERATIONS says why 5) or one run of the
user's reproducer, a Bernoulli trial: did the bug's signature show?

* Calibration: the bad end runs for a fixed number of trials (30 batches, 6 runs of a
  reproducer). k of n trials showing
  the bug give p = k/n, a one-sided Clopper-Pearson lower bound p_low at level
  c_cal = 1 - 0.7 (1 - C) (stats.CALIBRATION_SHARE), and a two-sided 95% Clopper-Pearson
  interval to show. The first detection fixes the bug's *signature*: "checker
  corruption" and the kernel's corruption report titles. Later steps count only a match
  of the signature (equal titles, or the same title family: the part before " in ").
* A commit is bad as soon as the signature shows. It is good only after n clean trials
  with (1 - p_low)^n <= 1 - c, where c is the per-verdict confidence. If p_low <= p (and
  a buggy commit shows the bug at the bad end's rate p), a buggy commit passes as good
  with probability (1 - p)^n <= 1 - c.
* Every good verdict can be wrong, and so can the bound: P(p_low > p) <= 1 - c_cal,
  exactly for every p and n (Wilson's bound only approximates this and undercovers at a
  calibration's n of 6). The bisect's answer is right when the bound holds and every good
  verdict is right, so the confidence is c_cal times the product over good verdicts (the
  good end's confirmation included) of 1 - (1 - p_low)^n_i. To reach the requested C,
  the good verdicts together get C / c_cal and each c = (C / c_cal)^(1/g), where g bounds
  the number of good verdicts: ceil(log2(commits in range)) bisect steps + the good end
  + one spare (for a neighbour tested after a skip). The statement is over calibrations:
  a bad end that does not reproduce stops the bisect rather than naming a commit. State
  files written before this rule (a 95% Wilson p_low, no p_low_confidence) resume with
  the plan and the confidence figure they were made with.
* Build failures, boot failures and harness errors make a step a skip; so does a crash
  or a corruption that does not match the signature (recorded in the step). The same
  infrastructure error at two steps in a row, or an exception that is not a
  HarnessError, stops the bisect (a harness problem must not become a verdict).
"""

from __future__ import annotations

from .engine import (
    SAME_INFRA_ERRORS_LIMIT,
    BisectAborted,
    Bisector,
    _validate,
    resume,
    start,
)
from .git import GIT_TIMEOUT, Git
from .kernel import KernelStepRunner
from .report import kernel_builds, report_json, report_text
from .state import (
    STATE_NAME,
    STATE_VERSION,
    BisectConfig,
    BisectState,
    StepRecord,
    load_state,
    save_state,
    state_path,
)
from .stats import (
    BATCH_ITERATIONS,
    BATCH_SECONDS,
    CALIBRATION_SHARE,
    CALIBRATION_TRIALS,
    REPRO_CALIBRATION_TRIALS,
    TRIAL_ITERATIONS,
    bisect_confidence,
    calibration_bounds,
    calibration_confidence,
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
    StepKind,
    StepOutcome,
    StepRequest,
    StepRunner,
    Verdict,
    classify,
)

__all__ = [
    "BATCH_ITERATIONS",
    "BATCH_SECONDS",
    "CALIBRATION_SHARE",
    "CALIBRATION_TRIALS",
    "GIT_TIMEOUT",
    "REPRO_CALIBRATION_TRIALS",
    "SAME_INFRA_ERRORS_LIMIT",
    "STATE_NAME",
    "STATE_VERSION",
    "TRIAL_ITERATIONS",
    "BisectAborted",
    "BisectConfig",
    "BisectState",
    "Bisector",
    "Git",
    "KernelStepRunner",
    "Printer",
    "Signature",
    "StepKind",
    "StepOutcome",
    "StepRecord",
    "StepRequest",
    "StepRunner",
    "Verdict",
    "_validate",
    "bisect_confidence",
    "calibration_bounds",
    "calibration_confidence",
    "classify",
    "good_verdicts_bound",
    "kernel_builds",
    "load_state",
    "needed_trials",
    "overall_confidence",
    "per_verdict_confidence",
    "report_json",
    "report_text",
    "resume",
    "save_state",
    "start",
    "state_path",
    "step_confidence",
    "verdicts_confidence",
]
