"""What `clean` is worth: the known bugs of the class, each caught on its bug kernel and
judged clean on its fix (`oomrace bugs`).

The corpus is data, configs/bugs.toml: per bug its real fix as a pair of kernel recipes,
the arches where it lived, the scenario and the evidence a catch must carry. A run boots
the bug kernel on each arch (`runs` times, for a median time to the first detection),
then the fix kernel, and states both with exact Clopper-Pearson bounds (harness.binomial,
the bounds bisect and `lab --compare` use): the bug's rate per batch with its two-sided
95% interval, and the fix's clean batches with the one-sided 95% upper bound on its rate.
"""

from __future__ import annotations

import statistics
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import atomicio, binomial, schema
from .arches import Arch, get_arch
from .errors import UsageError
from .evaluate import Resolver, Runner
from .kernel.build import recipes
from .kernel.image import ResolvedKernel
from .machine import MachineOptions
from .paths import data_path
from .run import RunResult, RunSpec, run_one
from .stress import Scenario
from .verdict import is_corruption_title, title_family

BUGS_FILE = data_path("configs") / "bugs.toml"
CONFIDENCE = 0.95


class Evidence(StrEnum):
    """What a catch of the bug looks like."""

    PAGE_POISON_REPORT = "page_poison_report"
    STALE_WRITE = "stale_write"
    STALE_READ = "stale_read"
    OOPS = "oops"


@dataclass(frozen=True)
class KnownBug:
    id: str
    summary: str
    fix_commit: str
    bug_recipe: str
    fix_recipe: str
    shows_on: tuple[str, ...]
    cannot_show_on: tuple[str, ...]
    scenario: str
    evidence: Evidence
    bug_seconds: float
    fix_seconds: float
    status: str  # "ready" | "planned"
    missing: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def arches(self) -> tuple[str, ...]:
        return self.shows_on + self.cannot_show_on

    def line(self) -> str:
        """One line for `bugs --list`."""
        where = ",".join(self.shows_on) + (f" (not {','.join(self.cannot_show_on)})"
                                           if self.cannot_show_on else "")
        state = "" if self.ready else f"  [planned: needs {self.missing}]"
        return (f"{self.id:<20} {self.scenario:<8} {where:<24} {self.bug_recipe} -> "
                f"{self.fix_recipe}: {self.summary}{state}")


def _entry(key: str, t: dict[str, Any], where: str) -> KnownBug:
    try:
        bug = KnownBug(
            id=key, summary=str(t["summary"]), fix_commit=str(t["fix_commit"]),
            bug_recipe=str(t["bug_recipe"]), fix_recipe=str(t["fix_recipe"]),
            shows_on=tuple(str(a) for a in t["shows_on"]),
            cannot_show_on=tuple(str(a) for a in t.get("cannot_show_on", [])),
            scenario=str(t["scenario"]), evidence=Evidence(str(t["evidence"])),
            bug_seconds=float(t["bug_seconds"]), fix_seconds=float(t["fix_seconds"]),
            status=str(t["status"]), missing=str(t.get("missing", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{where}: {e.__class__.__name__}: {e} (see the file's header for "
                         "the keys)") from None
    if bug.status not in ("ready", "planned") or (bug.status == "planned") != bool(bug.missing):
        raise UsageError(f"{where}: status must be 'ready', or 'planned' with `missing`")
    for arch in bug.arches():
        get_arch(arch)
    Scenario.parse(bug.scenario)
    if bug.ready:
        names = recipes.recipe_names()
        for recipe in (bug.bug_recipe, bug.fix_recipe):
            if recipe not in names:
                raise UsageError(f"{where}: unknown kernel recipe {recipe!r}")
    return bug


def load_bugs(path: Path = BUGS_FILE) -> list[KnownBug]:
    """Every entry of the corpus, in file order; UsageError on a malformed one."""
    try:
        tables = tomllib.loads(path.read_text()).get("bug", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: {e}") from None
    if not isinstance(tables, dict):
        raise UsageError(f"{path}: [bug.ID] tables expected")
    return [_entry(k, t, f"{path} [bug.{k!r}]") for k, t in tables.items()]


def select(bugs: Sequence[KnownBug], ids: Sequence[str]) -> list[KnownBug]:
    """The entries named (all ready ones for none); a name not in the corpus is an error."""
    if not ids:
        return [b for b in bugs if b.ready]
    known = {b.id: b for b in bugs}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UsageError(f"unknown bug {unknown[0]!r}; `oomrace bugs --list` shows the corpus")
    return [known[i] for i in ids]


@dataclass(frozen=True)
class Row:
    """One bug on one arch: the bug kernel's runs and the fix kernel's run."""

    bug: str
    arch: str
    role: str  # "must show" | "control" (an arch where it cannot show)
    bug_recipe: str
    detected: int
    trials: int
    rate_ci95: tuple[float, float]
    first_detection_seconds: tuple[float, ...]  # one per bug run that detected
    fix_recipe: str
    fix_clean: int
    fix_trials: int
    fix_iterations: int
    fix_upper95: float
    evidence: str
    verdict: str  # "caught, fix clean" | "not caught" | "fix not clean" | ...

    @property
    def median_first_detection(self) -> float | None:
        times = self.first_detection_seconds
        return statistics.median(times) if times else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rate_ci95": list(self.rate_ci95),
                "first_detection_seconds": list(self.first_detection_seconds),
                "median_first_detection": self.median_first_detection}


def evidence_of(results: Sequence[RunResult]) -> str:
    """The kernel's corruption reports by kind and the stress records by evidence."""
    counts: dict[str, int] = {}
    for result in results:
        for report in result.reports:
            if is_corruption_title(report.title) or result.verdict == "crashed":
                key = title_family(report.title)
                counts[key] = counts.get(key, 0) + 1
        for record in result.stress.corruptions if result.stress else ():
            key = f"{record.source} record ({record.evidence or 'foreign word'})"
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{n} x {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
                     [:3]) or "-"


def _verdict(role: str, detected: int, fix_dirty: int, fix_trials: int) -> str:
    if fix_dirty:
        return "fix not clean"
    if role == "control":
        return "control clean" if not detected else "detected where it cannot show"
    if not detected:
        return "not caught"
    return "caught, fix clean" if fix_trials else "caught, fix not run"


def run_bug(bug: KnownBug, arch: Arch, out: Path, options: MachineOptions, resolve: Resolver,
            runs: int = 1, seed: int | None = None, runner: Runner = run_one,
            progress: Callable[[str], None] = print) -> Row:
    """The bug kernel `runs` times (each stops at its first detection), then the fix."""
    def spec(recipe: str, seconds: float, stop: bool) -> RunSpec:
        kernel = ResolvedKernel(recipe, arch, resolve(recipe, arch))
        return RunSpec(kernel=kernel, scenario=bug.scenario, options=options,
                       duration_s=seconds, seed=seed, stop_on_first_detection=stop)

    role = "must show" if arch.name in bug.shows_on else "control"
    bug_results = []
    for i in range(runs):
        progress(f"[bugs] {bug.id} {arch.name} {bug.bug_recipe}: run {i + 1}/{runs}, "
                 f"{bug.scenario} up to {bug.bug_seconds:g} s")
        bug_results.append(runner(spec(bug.bug_recipe, bug.bug_seconds, True),
                                  out / bug.id / arch.name / f"bug-{i + 1}"))
    # An oops is what some bugs of the class look like (CVE-2018-1000200): a crashed run is
    # a catch for them, and a failure of the run for the others.
    oops_ok = bug.evidence is Evidence.OOPS
    detected = sum((r.stress.detections if r.stress else 0) or
                   int(oops_ok and r.verdict == "crashed") for r in bug_results)
    trials = sum(r.stress.trials for r in bug_results if r.stress)
    firsts = tuple(r.stress.first_detection_seconds for r in bug_results
                   if r.stress and r.stress.first_detection_seconds is not None)
    progress(f"[bugs] {bug.id} {arch.name} {bug.fix_recipe}: {bug.scenario} for "
             f"{bug.fix_seconds:g} s")
    fix = runner(spec(bug.fix_recipe, bug.fix_seconds, False), out / bug.id / arch.name / "fix")
    work = fix.stress
    fix_trials = work.trials if work else 0
    fix_dirty = work.detections if work else 0
    fine = ("clean", "corrupted", "crashed") if oops_ok else ("clean", "corrupted")
    failed = fix.verdict not in ("clean", "corrupted") or any(
        r.verdict not in fine for r in bug_results)
    verdict = _verdict(role, detected, fix_dirty, fix_trials)
    if failed:
        bad = next((r for r in bug_results if r.verdict not in fine), fix)
        first = (bad.error or bad.reason or "").splitlines()[:1]
        verdict = f"error: a run ended {bad.verdict}" + (f" ({first[0][:80]})" if first else "")
    return Row(
        bug=bug.id, arch=arch.name, role=role, bug_recipe=bug.bug_recipe, detected=detected,
        trials=trials, rate_ci95=binomial.clopper_pearson_interval(detected, trials, CONFIDENCE),
        first_detection_seconds=firsts, fix_recipe=bug.fix_recipe,
        fix_clean=fix_trials - fix_dirty, fix_trials=fix_trials,
        fix_iterations=work.iterations if work else 0,
        fix_upper95=binomial.clopper_pearson_upper(fix_dirty, fix_trials, CONFIDENCE)
        if fix_trials else 1.0,
        evidence=evidence_of(bug_results), verdict=verdict,
    )


def table(rows: Sequence[Row]) -> str:
    """The detection table, one line per bug and arch."""
    head = ("bug", "arch", "kernel", "detected", "rate [95% CI]", "median first",
            "fix", "fix clean", "fix rate <=", "evidence", "verdict")
    body = []
    for r in rows:
        med = r.median_first_detection
        rate = f"{r.detected / r.trials:.2f} [{r.rate_ci95[0]:.2f}, {r.rate_ci95[1]:.2f}]" \
            if r.trials else "n/a"
        body.append((r.bug, r.arch, r.bug_recipe, f"{r.detected}/{r.trials}", rate,
                     "-" if med is None else f"{med:.1f} s", r.fix_recipe,
                     f"{r.fix_clean}/{r.fix_trials} ({r.fix_iterations} it.)",
                     f"{r.fix_upper95:.2f}", r.evidence[:60], r.verdict))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])


def to_json(rows: Sequence[Row]) -> dict[str, Any]:
    return schema.versioned({"confidence": CONFIDENCE, "rows": [r.to_json() for r in rows]})


def write_json(path: Path, rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicio.write_json(path, to_json(rows))


def all_hold(rows: Sequence[Row]) -> bool:
    """Every bug caught where it must show, every fix and control clean."""
    return bool(rows) and all(r.verdict in ("caught, fix clean", "control clean") for r in rows)
