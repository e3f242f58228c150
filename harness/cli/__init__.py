"""The `oomrace` command: the one place that names every subcommand, its options (in
`options`) and its exit codes (in `exits`). The work is done by the modules it calls.

    commands   what each subcommand does with its options
    options    each subcommand's options, help generated from ARCHES, Scenario, recipes
    output     `--json [FILE]` and logging, the same for every subcommand
    exits      the exit-code table (README's "Exit codes" repeats it)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import signals
from ..errors import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, HarnessError, harness_bug
from ..inputs import OneLineParser
from . import options
from .commands import (
    cmd_bisect,
    cmd_boot,
    cmd_bugs,
    cmd_cache,
    cmd_check_patch,
    cmd_doctor,
    cmd_evaluate,
    cmd_kernel_build,
    cmd_lab,
    cmd_parse_log,
    cmd_record_lkdtm,
    cmd_run,
)
from .exits import help_epilog
from .output import (
    STDOUT,
    StdoutError,
    configure_logging,
    guarded_stdout,
    json_on_stdout,
    silence_stdout,
)

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_options: Callable[[argparse.ArgumentParser], None] | None
    handler: Handler | None  # None: a group of subcommands
    description: str | None = None
    subcommands: tuple[Command, ...] = ()


def _check_patch_command() -> Command:
    return Command(
        "check-patch", "judge one patch mail (stdin) as a CI check for b4 or patchwork",
        options.add_check_patch_options, cmd_check_patch,
        "Read one patch mail on stdin (as b4 review's check commands pipe it), apply it to "
        "--base as git am would, build it and judge it beside the bug as `evaluate --mbox` "
        "does; print b4's JSON list [{tool, status, summary, url, details}] or, with "
        "--format patchwork, a patchwork check (state, context, description, target_url). "
        "Exit 0 when the check was printed.")


def command_table() -> tuple[Command, ...]:
    """Every subcommand. Built per call, so a test's monkeypatched cmd_* is the one run."""
    kernel_build = Command(
        "build", "build (or find cached) a kernel", options.add_kernel_build_options,
        cmd_kernel_build,
        "Build (or find cached) a kernel: a recipe, or any source with the config of a "
        "recipe and your patches. Prints the image path last.")
    return (
        Command("run", "boot guests, run a scenario (or your reproducer), decide a verdict",
                options.add_run_options, cmd_run),
        Command("boot", "boot a guest and attach its console (Ctrl-A X quits)",
                options.add_boot_options, cmd_boot),
        Command("doctor", "list missing host tools and how to install them",
                options.add_doctor_options, cmd_doctor),
        Command("kernel", "kernel recipes: build one (kernel build --help)", None, None,
                subcommands=(kernel_build,)),
        Command("cache", "list the build cache (kernels, build directories), or prune it",
                options.add_cache_options, cmd_cache,
                "List the built kernels and the persistent build directories of "
                "incremental builds, with sizes and last use; `oomrace cache prune` removes "
                "the least recently used build directories beyond --max-dirs / --max-size "
                "and, with --kernels-unused-for, kernels not used for that many days."),
        Command("parse-log", "find crash reports in a console log",
                options.add_parse_log_options, cmd_parse_log),
        Command("bisect", "git-bisect a kernel tree for the commit that brought (or fixed) "
                "a bug", options.add_bisect_options, cmd_bisect,
                "Drive `git bisect` over a kernel git tree: build each commit, boot it, run "
                "the scenario (or your --exec/--repro reproducer); a commit is bad as soon "
                "as the bug's signature shows, good after enough clean trials for "
                "--confidence. Ctrl-C keeps the bisect; --resume continues it."),
        Command("lab", "nightly lab: run a matrix of cells in parallel, or merge shard outputs",
                options.add_lab_options, cmd_lab,
                "Run the cells of a matrix file (configs/nightly.toml) as pytest tests in "
                "parallel, writing summary.json, junit.xml and report.html into --out; or "
                "`lab merge DIR... --out DIR` to join shard outputs into one night. Exit: 0 "
                "as expected, 1 a cell not as expected, 3 a regression against the previous "
                "night, 130 interrupted."),
        Command("evaluate", "which fix works? a bug and each proposed fix, side by side",
                options.add_evaluate_options, cmd_evaluate,
                "Run the bug's kernel and each candidate fix (configs/evaluations.toml) on "
                "every arch and print one row per recipe and arch: verdict, detections per "
                "batch with a 95% interval, the evidence, and whether the fix's interval lies "
                "below the bug's. --mbox FILE/--msgid ID: a thread's candidate fixes too, "
                "applied as git am would, one row each naming its message. Exit 0 when the "
                "bug shows on some arch and every recipe fix is judged to fix it there."),
        _check_patch_command(),
        Command("bugs", "what `clean` is worth: the known bugs of the class, caught and fixed",
                options.add_bugs_options, cmd_bugs,
                "Run each known bug of the corpus (configs/bugs.toml) on its bug kernel and "
                "then its fix kernel, on every arch where it lived (and as a control where "
                "it cannot show), and print the detection table: detected/trials with an "
                "exact 95% interval, the median time to the first detection, the fix's clean "
                "batches with the upper bound on its rate, and the evidence. --list prints "
                "the corpus. Exit 0 when every bug is caught and every fix is clean."),
        Command("record-lkdtm", "(development) record LKDTM crash logs as parser test data",
                options.add_record_lkdtm_options, cmd_record_lkdtm,
                "Boot the v6.1-lkdtm recipe, provoke each LKDTM crash type and save the "
                "console log as <out>/<arch>/<TYPE>.log; exit 1 when a title differs from "
                "the expected one."),
    )


def _add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  table: Sequence[Command], prefix: str) -> None:
    for c in table:
        p = sub.add_parser(c.name, help=c.help, description=c.description or c.help)
        if c.add_options is not None:
            c.add_options(p)
        if c.handler is not None:
            p.set_defaults(handler=c.handler)
        if c.subcommands:
            names = ",".join(s.name for s in c.subcommands)
            nested = p.add_subparsers(dest=f"{prefix}{c.name}_command", required=True,
                                      metavar=f"{{{names}}}")
            _add_commands(nested, c.subcommands, f"{prefix}{c.name}_")


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineParser(
        prog="oomrace",
        description="Catch and bisect OOM-reaper memory-corruption races on real kernels "
                    "booted under QEMU.",
        epilog=help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: debug lines of our progress; -vv: also the libraries' "
                             "(paramiko)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_commands(sub, command_table(), "")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a bad option (argparse printed why)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    configure_logging(args.verbose)
    signals.install()  # SIGTERM and SIGHUP take Ctrl-C's path: guests stopped, logs kept
    handler: Handler = args.handler
    try:
        result_on_stdout = getattr(args, "json", None) == STDOUT or \
            getattr(args, "format", "text") == "ktap"
        with guarded_stdout():
            with json_on_stdout(result_on_stdout):
                code = int(handler(args))
            sys.stdout.flush()  # here, where a full stdout is caught, not at the exit
        return code
    except StdoutError as e:
        return _stdout_error(e)
    except HarnessError as e:
        print(f"oomrace: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        print(f"oomrace: interrupted{f' ({e})' if str(e) else ''}", file=sys.stderr)
        return signals.exit_status(e)
    except BrokenPipeError:
        # The reader went away (`oomrace ... | head`): not an error worth a traceback.
        sys.stderr.close()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # a harness bug: one line here, the traceback in a file
        return harness_bug("oomrace", e)


def _stdout_error(e: StdoutError) -> int:
    print(f"oomrace: error: {e}", file=sys.stderr)
    silence_stdout()
    return EXIT_BAD_INPUT


__all__ = ["Command", "build_parser", "command_table", "main"]
