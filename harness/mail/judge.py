"""Which fix in the thread works? Each candidate of an mbox applied to a base, built and
judged beside the bug, with the machinery of `oomrace evaluate` (harness/evaluate.py).

A candidate that is incomplete, not a patch, does not apply or does not build is a row
saying so with its first error; the others become recipes (the base with the applied
diff as one more patch) and run as the evaluation's fixes do.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .. import evaluate, schema
from ..arches import Arch
from ..errors import KernelError
from ..kernel.build import builder
from ..kernel.build.recipes import Recipe
from ..kernel.build.source import recipe_source
from ..kernel.image import KernelImage
from ..kernel.resolve import from_build
from ..machine import MachineOptions
from ..run import run_one
from .apply import ApplyResult, applied_diff, apply_candidate
from .candidates import Candidate, Kind
from .mbox import Message, MessageRef


@dataclass(frozen=True)
class MailRow:
    """One candidate on one arch ("-" when it never reached a build), and what it got."""

    candidate: str  # Kind's value
    message: MessageRef
    also: tuple[str, ...]  # Message-IDs of the other mails that carry the same diff
    arch: str
    judgement: str
    first_error: str  # why it did not run: the first error line ("" when it ran)
    run: evaluate.Row | None  # the run's row, when it ran

    def to_dict(self) -> dict[str, Any]:
        run = {**asdict(self.run), "ci95": list(self.run.ci95)} if self.run else {}
        return {**run, "candidate": self.candidate, **asdict(self.message),
                "also": list(self.also), "arch": self.arch, "judgement": self.judgement,
                "first_error": self.first_error, "role": "candidate"}


@dataclass(frozen=True)
class Prepared:
    candidate: Candidate
    applied: ApplyResult
    recipe: Recipe | None  # the base with the applied diff, when it applied
    same_as: str = ""  # the evaluation's own fix recipe that makes the same change


Builder = Callable[[Recipe, str], builder.BuiltKernel]


def _build(recipe: Recipe, arch: str) -> builder.BuiltKernel:
    return builder.build(recipe, arch, progress=False)


def same_changes(fixes: Sequence[Recipe], base: Recipe, tree: Path,
                 out: Path) -> dict[str, str]:
    """The evaluation's own fixes on the same base, by their change as `git diff` text: a
    candidate making one of them is judged by that recipe's run, not built again."""
    found: dict[str, str] = {}
    for recipe in fixes:
        if recipe.source != base.source or recipe.patches[:len(base.patches)] != base.patches:
            continue
        own = recipe.patch_paths()[len(base.patches):]
        diff = applied_diff(tree, own, out / "candidates" / f"recipe-{recipe.name}")
        if diff:
            found.setdefault(diff, recipe.name)
    return found


def prepare(candidates: Sequence[Candidate], base: Recipe, tree: Path, out: Path,
            known: dict[str, str] | None = None) -> list[Prepared]:
    """Apply each candidate to the base tree's files; the ones that apply get a recipe,
    or the name of the `known` recipe that makes the same change."""
    prepared = []
    for c in candidates:
        applied = apply_candidate(c, tree, out / "candidates" / c.label)
        recipe, same = None, ""
        if applied.patch is not None:
            same = (known or {}).get(applied.patch.read_text(), "")
            recipe = None if same else replace(
                base, name=c.label, patches=(*base.patches, str(applied.patch)),
                description=f"{base.name} + {c.ref.subject} <{c.ref.message_id}>")
        prepared.append(Prepared(c, applied, recipe, same))
    return prepared


_COMPILER_ERROR = re.compile(r"^(?:\.\./)?(\S+:\d+(?::\d+)?: (?:fatal )?error: .*)$", re.M)


def first_build_error(error: str) -> str:
    """The compiler's first error: from the build log the message names (the message
    itself has only the log's last lines), else from the message, else its first line."""
    log_path = re.search(r"\(build log: ([^)]+)\)", error)
    texts = [error]
    if log_path is not None:
        with contextlib.suppress(OSError):
            texts.insert(0, Path(log_path.group(1)).read_text(errors="replace"))
    for text in texts:
        if (m := _COMPILER_ERROR.search(text)) is not None:
            return m.group(1).strip()[:200]
    return error.splitlines()[0][:200] if error else "the build failed"


def _not_run(p: Prepared, arch: str = "-", error: str = "") -> MailRow:
    c = p.candidate
    if c.kind is Kind.INCOMPLETE:
        judgement = f"incomplete: {c.note}"
    elif c.kind is Kind.NOT_A_PATCH:
        judgement = f"not a patch: {c.note}"
    elif error:
        judgement = f"does not build: {error}"
    else:
        failing = f" ({'; '.join(p.applied.failures[:3])})" if p.applied.failures else ""
        judgement = f"does not apply: {p.applied.first_error}{failing}"
    return MailRow(c.kind.value, c.ref, tuple(m.message_id for m in c.messages[1:]), arch,
                   judgement, error or (p.applied.first_error if c.appliable else c.note),
                   None)


def _not_tried(p: Prepared) -> MailRow:
    c = p.candidate
    return MailRow(c.kind.value, c.ref, tuple(m.message_id for m in c.messages[1:]), "-",
                   "not tried: --candidate chose others (it applies)", "", None)


def chosen(p: Prepared, only: Collection[str] | None) -> bool:
    """Whether --candidate (Message-IDs of any of its messages) leaves `p` in."""
    return only is None or any(m.message_id in only for m in p.candidate.messages)


def _ran(p: Prepared, row: evaluate.Row) -> MailRow:
    c = p.candidate
    same = f" (the same change as recipe {p.same_as})" if p.same_as else ""
    return MailRow(c.kind.value, c.ref, tuple(m.message_id for m in c.messages[1:]),
                   row.arch, row.judgement + same, "", row)


@dataclass
class ThreadResult:
    """The rows so far: the bug's and the recipes' (evaluate.Row), and the candidates'."""

    rows: list[evaluate.Row]
    mail_rows: list[MailRow]
    order: list[str]  # candidates' Message-IDs in thread order, for the table

    def sorted_mail_rows(self) -> list[MailRow]:
        rank = {mid: i for i, mid in enumerate(self.order)}
        return sorted(self.mail_rows, key=lambda r: (rank.get(r.message.message_id, 0), r.arch))


def evaluate_thread(messages: Sequence[Message], ev: evaluate.Evaluation, base: Recipe,
                    arches: Sequence[Arch], out: Path, options: MachineOptions,
                    resolve_recipe: Callable[[str], Recipe], result: ThreadResult, *,
                    seed: int | None = None, runner: evaluate.Runner = run_one,
                    build: Builder = _build, only: Collection[str] | None = None,
                    progress: Callable[[str], None] = print) -> ThreadResult:
    """Judge every candidate of the thread on `base` (those `only` names, by Message-ID,
    when given), beside the bug (`ev.bug`) and the evaluation's own fixes, per arch.
    Rows go into `result` as they finish."""
    from .candidates import find_candidates

    candidates = find_candidates(messages)
    result.order[:] = [c.ref.message_id for c in candidates]
    # The base tree only when something may apply (a hit costs ~2 s, a first unpack more).
    tree = recipe_source(base).tree \
        if any(c.appliable for c in candidates) else Path("/nonexistent")
    known = same_changes([resolve_recipe(f) for f in ev.fixes], base, tree, out) \
        if any(c.appliable for c in candidates) else {}
    prepared = prepare(candidates, base, tree, out, known)
    # A candidate left out by --candidate still applied: its row says so, nothing is built.
    result.mail_rows.extend(_not_tried(p) for p in prepared
                            if p.recipe is not None and not chosen(p, only))
    prepared = [p for p in prepared if p.recipe is None or chosen(p, only)]
    result.mail_rows.extend(_not_run(p) for p in prepared
                            if p.recipe is None and not p.same_as)
    recipes = {p.recipe.name: p.recipe for p in prepared if p.recipe is not None}

    def resolve(name: str, arch: Arch) -> KernelImage:
        return from_build(build(recipes.get(name) or resolve_recipe(name), arch.name))

    for arch in arches:
        built = []
        for p in prepared:
            if p.recipe is None:
                continue
            progress(f"[evaluate] {arch.name} {p.recipe.name}: building")
            try:
                build(p.recipe, arch.name)
                built.append(p)
            except KernelError as e:
                result.mail_rows.append(_not_run(p, arch.name, first_build_error(str(e))))
        arch_ev = replace(ev, fixes=ev.fixes + tuple(b.candidate.label for b in built))
        if not arch_ev.fixes:  # nothing to judge on this arch: no bug run either
            continue
        rows: list[evaluate.Row] = []
        try:
            evaluate.evaluate(arch_ev, [arch], out, options, resolve, seed=seed, runner=runner,
                              progress=progress, rows=rows)
        finally:  # interrupted: the rows finished so far are kept
            by_label = {p.candidate.label: p for p in built}
            for row in rows:
                if row.recipe in by_label:
                    result.mail_rows.append(_ran(by_label[row.recipe], row))
                    continue
                result.rows.append(row)
                result.mail_rows.extend(_ran(p, row) for p in prepared
                                        if p.same_as and p.same_as == row.recipe)
    return result


def to_json(ev: evaluate.Evaluation, base: Recipe, mbox: Path, result: ThreadResult,
            ) -> dict[str, Any]:
    """evaluation.json: every row carries `message_id` (None for the bug and recipes) and
    `judgement`."""
    recipe_rows = [{**asdict(r), "ci95": list(r.ci95), "message_id": None} for r in result.rows]
    return schema.versioned({
        "evaluation": asdict(ev), "base": base.name, "mbox": str(mbox),
        "rows": recipe_rows + [r.to_dict() for r in result.sorted_mail_rows()],
    })


def table(result: ThreadResult) -> str:
    """The candidates, one line each per arch: the message, then what it got."""
    head = ("author", "date", "subject", "message-id", "arch", "verdict", "detected",
            "judgement")
    body = []
    for r in result.sorted_mail_rows():
        run = r.run
        also = f" (+{len(r.also)})" if r.also else ""
        body.append((r.message.author, r.message.date, r.message.subject,
                     r.message.message_id + also, r.arch, run.verdict if run else "-",
                     f"{run.detections}/{run.trials}" if run else "-", r.judgement))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    widths[2] = min(widths[2], 50)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])
