"""Which fix works? A bug and each fix proposed for it, run side by side on every arch.

`oomrace evaluate NAME` reads an evaluation from configs/evaluations.toml: a recipe with
the bug, recipes with one candidate fix each, a scenario and budgets. Per arch it runs
the bug first; its detection rate per batch, with a 95% Wilson interval [L, U], says how
much clean evidence a fix needs: a fix run stops after n clean batches once the upper
end of its own interval, z^2 / (n + z^2), is below L. A fix that corrupts is refuted; a
bug that does not show on an arch (x86_64 flushes fullmm gathers) leaves its fixes
unjudged there, and its clean run is the negative control.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import atomicio, schema
from .arches import Arch
from .errors import UsageError
from .inputs import positive_number
from .kernel.build import builder, recipes
from .kernel.image import KernelImage, ResolvedKernel
from .kernel.resolve import from_build
from .machine import MachineOptions
from .paths import data_path
from .run import RunResult, RunSpec, run_one
from .verdict import is_corruption_title, title_family, wilson_interval
from .workload import StressWorkload

EVALUATIONS_FILE = data_path("configs") / "evaluations.toml"
_Z = 1.959964
CONTROL_TRIALS = 3  # batches of a fix on an arch where the bug does not show


@dataclass(frozen=True)
class Evaluation:
    name: str
    description: str
    bug: str
    fixes: tuple[str, ...]
    scenario: str
    arches: tuple[str, ...]
    bug_seconds: float
    fix_seconds: float


def evaluation_names(path: Path = EVALUATIONS_FILE) -> list[str]:
    return list(_tables(path))


def _tables(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: {e}") from None
    tables = data.get("evaluation", {})
    if not isinstance(tables, dict):
        raise UsageError(f"{path}: [evaluation.NAME] tables expected")
    return tables


def load_evaluation(name: str, path: Path = EVALUATIONS_FILE) -> Evaluation:
    tables = _tables(path)
    if name not in tables:
        raise UsageError(f"unknown evaluation {name!r}; valid: {', '.join(tables) or '(none)'}")
    t = tables[name]
    where = f"{path} [evaluation.{name!r}]"
    try:
        ev = Evaluation(
            name=name, description=str(t.get("description", "")), bug=str(t["bug"]),
            fixes=tuple(str(f) for f in t["fixes"]), scenario=str(t["scenario"]),
            arches=tuple(str(a) for a in t["arches"]),
            bug_seconds=float(t["bug_seconds"]), fix_seconds=float(t["fix_seconds"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{where}: needs bug, fixes, scenario, arches, bug_seconds and "
                         f"fix_seconds ({e})") from None
    names = recipes.recipe_names()
    for recipe in (ev.bug, *ev.fixes):
        if recipe not in names:
            raise UsageError(f"{where}: unknown kernel recipe {recipe!r}")
    for key in ("bug_seconds", "fix_seconds"):
        positive_number(getattr(ev, key), f"{where}: {key}")
    return ev


def clean_trials_needed(bug_low: float) -> int:
    """The fewest clean batches whose 95% Wilson upper bound, z^2/(n+z^2), is below
    the bug's lower bound: then the fix's rate and the bug's cannot be the same."""
    if bug_low <= 0:
        return 0
    return math.floor(_Z * _Z * (1 - bug_low) / bug_low) + 1


@dataclass(frozen=True)
class Row:
    """One run of the table: a recipe on an arch, and what it says about the fix."""

    recipe: str
    arch: str
    role: str  # "bug" | "fix"
    verdict: str
    detections: int
    trials: int
    rate: float | None
    ci95: tuple[float, float]
    evidence: str
    judgement: str
    first_detection_seconds: float | None
    result: str  # path of result.json

    @property
    def interval(self) -> str:
        if self.rate is None:
            return "n/a"
        return f"{self.rate:.2f} [{self.ci95[0]:.2f}, {self.ci95[1]:.2f}]"


def evidence_of(result: RunResult) -> str:
    """The kernel's corruption reports by kind and the checker's records, briefly."""
    counts: dict[str, int] = {}
    for report in result.reports:
        if is_corruption_title(report.title):
            family = title_family(report.title)
            counts[family] = counts.get(family, 0) + 1
    parts = [f"{n} x {family}" for family, n in counts.items()][:2]
    records = result.stress.checker_corruptions if result.stress else 0
    if records:
        parts.append(f"{records} checker record(s)")
    if not parts and result.error:
        parts.append(result.error.splitlines()[0][:80])
    return "; ".join(parts) or "-"


def _row(recipe: str, arch: str, role: str, result: RunResult, judgement: str) -> Row:
    work = result.stress
    detections, trials = (work.detections, work.trials) if work else (0, 0)
    return Row(
        recipe=recipe, arch=arch, role=role, verdict=result.verdict, detections=detections,
        trials=trials, rate=detections / trials if trials else None,
        ci95=wilson_interval(detections, trials), evidence=evidence_of(result),
        judgement=judgement,
        first_detection_seconds=work.first_detection_seconds if work else None,
        result=str(Path(result.workdir) / "result.json"),
    )


def judge_fix(bug: Row, fix: Row) -> str:
    """What the fix's run says, against the bug's run on the same arch."""
    if fix.verdict == "corrupted":
        return "does not fix it: corruption with the fix"
    if fix.verdict != "clean":
        return f"no judgement: the fix run ended {fix.verdict}"
    if bug.verdict != "corrupted":
        return "no judgement: the bug does not show on this arch"
    if fix.ci95[1] < bug.ci95[0]:
        return "fixes it: 95% intervals apart"
    return "inconclusive: more clean batches needed"


Runner = Callable[[RunSpec, Path], RunResult]
Resolver = Callable[[str, Arch], KernelImage]


def recipe_resolver(source: str | None) -> Resolver:
    """Build a recipe for an arch (from `source` instead of its own, when given)."""
    def resolve(recipe: str, arch: Arch) -> KernelImage:
        base = recipes.load_recipe(recipe)
        if source is not None:
            base = replace(base, source=source, sha256=None, ref=None)
        return from_build(builder.build(base, arch.name))

    return resolve


def evaluate(ev: Evaluation, arches: Sequence[Arch], out: Path, options: MachineOptions,
             resolve: Resolver, seed: int | None = None, runner: Runner = run_one,
             progress: Callable[[str], None] = print,
             rows: list[Row] | None = None) -> list[Row]:
    """Run the bug, then each fix, on every arch; one folder per run under `out`. Rows
    are appended to `rows` as they finish, so an interrupted caller still has them."""
    rows = [] if rows is None else rows
    for arch in arches:
        def spec(recipe: str, seconds: float, max_trials: int = 0,
                 arch: Arch = arch) -> RunSpec:
            kernel = ResolvedKernel(recipe, arch, resolve(recipe, arch))
            return RunSpec(kernel=kernel, scenario=ev.scenario, options=options,
                           duration_s=seconds, seed=seed, max_trials=max_trials)

        progress(f"[evaluate] {arch.name} {ev.bug}: {ev.scenario} for {ev.bug_seconds:.0f} s")
        bug_result = runner(spec(ev.bug, ev.bug_seconds), out / ev.bug / arch.name)
        shows = bug_result.verdict == "corrupted"
        bug = _row(ev.bug, arch.name, "bug", bug_result, "the bug shows" if shows
                   else f"the bug does not show ({bug_result.verdict})")
        rows.append(bug)
        progress(f"[evaluate] {arch.name} {ev.bug}: {bug.verdict}, {bug.detections}/"
                 f"{bug.trials} batches")
        batch_s = StressWorkload.batch_seconds
        cap = max(1, int(ev.fix_seconds // batch_s))
        # Where the bug does not show, a fix cannot be judged: a short clean control run.
        needed = clean_trials_needed(bug.ci95[0]) if bug.verdict == "corrupted" \
            else CONTROL_TRIALS
        for fix in ev.fixes:
            trials = min(needed, cap)
            seconds = min(ev.fix_seconds, trials * batch_s + batch_s)
            progress(f"[evaluate] {arch.name} {fix}: up to {trials} batches")
            result = runner(spec(fix, seconds, trials), out / fix / arch.name)
            row = _row(fix, arch.name, "fix", result, "")
            row = replace(row, judgement=judge_fix(bug, row))
            rows.append(row)
            progress(f"[evaluate] {arch.name} {fix}: {row.verdict}, {row.judgement}")
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table, one line per recipe and arch."""
    head = ("recipe", "arch", "verdict", "detected", "rate [95% CI]", "evidence", "judgement")
    body = [(r.recipe, r.arch, r.verdict, f"{r.detections}/{r.trials}", r.interval,
             r.evidence, r.judgement) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    widths[5] = min(widths[5], 60)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])


def to_json(ev: Evaluation, rows: Sequence[Row]) -> dict[str, Any]:
    return schema.versioned({
        "evaluation": asdict(ev), "rows": [{**asdict(r), "ci95": list(r.ci95)} for r in rows],
    })


def rows_from_json(data: Mapping[str, Any], where: str = "evaluation.json") -> list[Row]:
    """The rows `to_json` wrote."""
    schema.check_version(data, where)
    return [Row(**{**r, "ci95": tuple(r["ci95"])}) for r in data.get("rows", [])]


def write_json(path: Path, ev: Evaluation, rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicio.write_json(path, to_json(ev, rows))


def with_budget(ev: Evaluation, bug_seconds: float | None,
                fix_seconds: float | None) -> Evaluation:
    """The evaluation with budgets from the command line, checked."""
    bug = positive_number(bug_seconds, "--bug-seconds") if bug_seconds is not None else None
    fix = positive_number(fix_seconds, "--fix-seconds") if fix_seconds is not None else None
    return replace(ev, bug_seconds=bug or ev.bug_seconds, fix_seconds=fix or ev.fix_seconds)
