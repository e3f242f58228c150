"""What a bisect found, as text and as JSON."""

from __future__ import annotations

from typing import Any

from .state import BisectState, Phase, state_path
from .stats import RateBounds


def kernel_builds(state: BisectState) -> int:
    """Kernel builds this bisect ran (cache hits not counted, failed builds counted)."""
    return sum(1 for r in state.records
               if r.outcome.kind == "build_failed" or r.outcome.kernel_built)


def report_json(state: BisectState) -> dict[str, Any]:
    d = state.to_dict()
    d["kernel_builds"] = kernel_builds(state)
    d["state_file"] = str(state_path(state.config.repo))
    return d


def _rate_bounds(bounds: RateBounds) -> str:
    """The calibration's interval and the bound the good rule used; a state from before
    the Clopper-Pearson rule has one 95% Wilson interval, whose lower end was the bound."""
    if bounds.p_low_confidence is None or bounds.interval95 is None:
        return f"95% Wilson interval [{bounds.p_low:.2f}, {bounds.p_high:.2f}]"
    low, high = bounds.interval95
    return (f"95% interval [{low:.2f}, {high:.2f}]; good verdicts assume p >= "
            f"{bounds.p_low:.3f} (one-sided Clopper-Pearson, {bounds.p_low_confidence:.3f})")


def report_text(state: BisectState) -> str:
    cfg, cal, res = state.config, state.calibration, state.result
    what = "first fixed commit" if cfg.find_fix else "first bad commit"
    lines = []
    if res is not None and res.commit:
        lines.append(f"{what}: {res.commit} {res.subject or ''}".rstrip())
    else:
        candidates = res.candidates if res is not None else ()
        lines.append(f"{what}: could not be narrowed down (only skipped commits left); "
                     f"candidates: {', '.join(c[:12] for c in candidates)}")
    if res is not None:
        lines.append(f"confidence: {res.confidence:.4f} (requested {cfg.confidence}; "
                     f"{res.confidence_point_estimate:.4f} with p's point estimate)")
    if cal is not None:
        b = cal.bounds
        lines.append(f"detection rate p: {b.detections}/{b.trials} trials = "
                     f"{b.p:.2f}, {_rate_bounds(b)} "
                     f"(trial = {cfg.iterations_per_trial} iteration(s) of {cfg.workload} on "
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
    if state.phase == Phase.DONE:
        lines.append(f"(the repository is still in git's bisect state: `git -C {cfg.repo} "
                     "bisect log` shows it, `git bisect reset` ends it)")
    return "\n".join(lines)
