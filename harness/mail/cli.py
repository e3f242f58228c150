"""`oomrace evaluate --mbox FILE | --msgid ID`: the thread's candidates judged on a base
(`--base RECIPE`, `--source DIR`, or the evaluation NAME's bug, whose own fixes then run
beside them against the same bug run)."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import atomicio, evaluate, proc
from ..arches import parse_arch_list
from ..cli.output import write_json
from ..errors import EXIT_VERDICT, UsageError
from ..kernel.build import recipes
from ..kernel.build.recipes import Recipe
from ..machine import MachineOptions
from ..run import new_run_dir
from ..stress import Scenario
from .check import TOOL, check_result, render
from .judge import ThreadResult, evaluate_thread, table, to_json
from .mbox import Message, parse_message, read_mbox, split_mbox

log = logging.getLogger(__name__)
B4_TIMEOUT = 300.0


def fetch_thread(msgid: str, out: Path) -> Path:
    """`b4 am -o DIR ID`: the series of a Message-ID from lore, as an mbox file."""
    hint = "pass the thread as --mbox FILE (b4 mbox ID, or lore's /t.mbox.gz)"
    if shutil.which("b4") is None:
        raise UsageError(f"--msgid needs b4 on PATH (pip install b4) and the network; {hint}")
    folder = out / "b4"
    folder.mkdir(parents=True, exist_ok=True)
    done = proc.run(["b4", "am", "-o", str(folder), msgid.strip("<>")], check=False,
                    timeout=B4_TIMEOUT)
    found = sorted(folder.glob("*.mbx"))
    if done.returncode != 0 or not found:
        first = next((line for line in done.output.splitlines() if line.strip()), "no output")
        raise UsageError(f"b4 am {msgid} fetched nothing ({first.strip()[:120]}); {hint}")
    if len(found) > 1:  # b4 am writes one .mbx per series: read them as one thread
        joined = folder / "thread.mbox"
        joined.write_bytes(b"".join(p.read_bytes() for p in found))
        return joined
    return found[0]


def _corpus_entry(recipe: str) -> evaluate.Evaluation | None:
    """The known bug whose evaluation (configs/evaluations.toml) runs on this recipe."""
    for name in evaluate.evaluation_names():
        ev = evaluate.load_evaluation(name)
        if ev.bug == recipe:
            return ev
    return None


def base_and_evaluation(args: argparse.Namespace) -> tuple[Recipe, evaluate.Evaluation]:
    """The base recipe and the evaluation (scenario, budgets, arches, own fixes)."""
    if args.evaluation is not None:
        ev = evaluate.load_evaluation(args.evaluation)
        if args.base is not None and args.base != ev.bug:
            raise UsageError(f"--base {args.base}: evaluation {ev.name} runs on {ev.bug}; "
                             "give one of them")
        base = recipes.load_recipe(ev.bug)
    else:
        if args.base is None and args.source is None:
            raise UsageError("--mbox/--msgid needs a base: --base RECIPE (e.g. v4.14.2), "
                             "--source DIR, or an evaluation NAME")
        base = recipes.load_recipe(args.base or recipes.DEFAULT_CONFIG_RECIPE)
        entry = _corpus_entry(base.name)
        if entry is None and args.scenario is None:
            raise UsageError(f"no known bug runs on {base.name}: give --scenario "
                             f"({', '.join(s.value for s in Scenario)})")
        ev = entry or evaluate.Evaluation(
            name=f"thread on {base.name}", description="", bug=base.name, fixes=(),
            scenario=str(args.scenario), arches=("aarch64", "x86_64"), bug_seconds=120,
            fix_seconds=180)
        ev = replace(ev, fixes=())
    if args.scenario is not None:
        ev = replace(ev, scenario=Scenario.parse(args.scenario).value)
    if args.source is not None:
        base = replace(base, source=args.source, sha256=None, ref=None)
    what = f"the candidate fixes of the thread on {base.name}"
    return base, replace(ev, description=f"{ev.description}; {what}" if ev.description
                         else what)


def resolver_for(base: Recipe, source: str | None) -> Callable[[str], Recipe]:
    """Recipes by name for the bug and the evaluation's own fixes (from --source too)."""

    def resolve(name: str) -> Recipe:
        if name == base.name:
            return base
        recipe = recipes.load_recipe(name)
        return replace(recipe, source=source, sha256=None, ref=None) if source else recipe

    return resolve


def cmd_evaluate_thread(args: argparse.Namespace,
                        options_for: Callable[[str], MachineOptions]) -> int:
    """Run it; evaluation.json in the run's folder keeps the rows finished so far,
    whatever happens. Bad input is refused before that folder is made."""
    base, ev = base_and_evaluation(args)
    ev = evaluate.with_budget(ev, args.bug_seconds, args.fix_seconds)
    arches = parse_arch_list(args.arch or list(ev.arches))
    options = options_for(ev.scenario)
    if args.msgid is not None and shutil.which("b4") is None:
        fetch_thread(args.msgid, Path())  # the one-line error, before anything is made
    messages = read_mbox(args.mbox.expanduser()) if args.mbox is not None else None
    out = new_run_dir(args.artifacts)
    mbox = args.mbox.expanduser() if args.mbox is not None else fetch_thread(args.msgid, out)
    messages = messages or read_mbox(mbox)
    result = ThreadResult([], [], [])
    try:
        evaluate_thread(messages, ev, base, arches, out, options,
                        resolver_for(base, args.source), result, seed=args.seed,
                        only=set(args.candidate) if args.candidate else None,
                        progress=log.info)
    finally:
        atomicio.write_json(out / "evaluation.json", to_json(ev, base, mbox, result))
    write_json(args.json, to_json(ev, base, mbox, result))
    recipes = f"{evaluate.table(result.rows)}\n\n" if result.rows else ""
    print(f"{ev.description}\n\n{recipes}{table(result)}\n\nresults: {out}", flush=True)
    bug_shows = any(r.role == "bug" and r.verdict == "corrupted" for r in result.rows)
    fixes_hold = all(r.judgement.startswith(("fixes it", "no judgement: the bug does not"))
                     for r in result.rows if r.role == "fix")
    return 0 if bug_shows and fixes_hold else EXIT_VERDICT


def read_patch_mail(data: bytes) -> Message:
    """The one mail check-patch reads: RFC 2822 bytes, or an mbox holding one message."""
    if not data.strip():
        raise UsageError("check-patch reads one patch mail on stdin (as b4's check commands "
                         "pipe it); stdin was empty")
    messages = list(split_mbox(data)) if data.startswith(b"From ") else [data]
    if len(messages) != 1:
        raise UsageError(f"check-patch reads one mail on stdin; got {len(messages)} (give "
                         "a thread to `oomrace evaluate --mbox`)")
    msg = parse_message(messages[0])
    if not msg.ref.message_id:
        raise UsageError("the mail on stdin has no Message-ID header; is it an email?")
    return msg


def cmd_check_patch(args: argparse.Namespace,
                    options_for: Callable[[str], MachineOptions]) -> int:
    """Judge the mail on stdin; print b4's JSON array or a patchwork check on stdout."""
    msg = read_patch_mail(sys.stdin.buffer.read())
    base, ev = base_and_evaluation(args)
    ev = replace(evaluate.with_budget(ev, args.bug_seconds, args.fix_seconds), fixes=())
    arches = parse_arch_list(args.arch or list(ev.arches))
    options = options_for(ev.scenario)
    out = new_run_dir(args.artifacts)
    result = ThreadResult([], [], [])
    try:
        evaluate_thread([msg], ev, base, arches, out, options, resolver_for(base, args.source),
                        result, seed=args.seed, progress=log.info)
    finally:
        atomicio.write_json(out / "evaluation.json", to_json(ev, base, Path("-"), result))
    check = check_result(result.sorted_mail_rows(), base.name, ev.scenario, args.url)
    print(render(check, args.format, args.context or f"{TOOL}-{base.name}"), flush=True)
    return 0
