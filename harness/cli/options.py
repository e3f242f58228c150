"""The options of each `oomrace` subcommand. Choices and help texts are generated from
the tables they come from (ARCHES, Scenario, recipes), so adding one touches no help."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from ..accel import ACCELS
from ..arches import arch_help
from ..errors import UsageError
from ..inputs import positive_number
from ..kernel.build.recipes import DEFAULT_CONFIG_RECIPE
from ..repro import REPRO_RUN_TIMEOUT
from ..stress import STRESS_CPUS, STRESS_HOST_CPUS, Scenario
from ..workload import WORKLOADS
from .output import add_json_option

DEFAULT_ARTIFACTS = Path("oomrace-artifacts")

STRESS_SCENARIOS = ", ".join(s.value for s in Scenario)
CHECK_WORKLOADS = " or ".join(sorted(WORKLOADS))


def seconds(option: str) -> Callable[[str], float]:
    """An argparse type for a duration: finite and > 0 (float() takes nan and inf)."""
    def parse(text: str) -> float:
        try:
            return positive_number(text, option)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


MIN_CONFIDENCE = 0.5
"""Below even odds a bisect's answer means nothing."""
MAX_CONFIDENCE = 0.9999
"""Above it a good verdict needs hundreds of clean trials on a flaky race."""


def confidence(text: str) -> float:
    """An argparse type for --confidence: a number in [MIN_CONFIDENCE, MAX_CONFIDENCE]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_CONFIDENCE <= value <= MAX_CONFIDENCE:  # nan fails this too
        raise argparse.ArgumentTypeError(
            f"--confidence must be a number from {MIN_CONFIDENCE} to {MAX_CONFIDENCE}, "
            f"not {text[:40]!r}")
    return value


def add_host_cpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host-cpus", type=int, default=None,
                   help="host CPUs QEMU may use, 0 for all (default: all for smoke, "
                        f"{STRESS_HOST_CPUS} for stress under TCG, where the race shows when "
                        "the host pauses a writer's vCPU; all for mremap, whose readers "
                        "must run during the move)")


def add_kconfig_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--kconfig", metavar="FILE", default=None,
                   help=f"a full .config as the base of {what} instead of the recipe's "
                        "base (make olddefconfig fills in the rest)")
    p.add_argument("--kconfig-add", metavar="CONFIG_X=y", action="append", default=[],
                   help=f"an option for {what} (repeatable), merged as a fragment and "
                        "checked in the final .config")


def add_guest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="append", default=None,
                   help=f"guest arch: {arch_help()} (repeatable; default x86_64)")
    p.add_argument("--kernel", default="debian",
                   help="debian (Debian's packaged kernel), a kernel recipe name, or a path")
    add_kconfig_options(p, "the --kernel recipe's build")
    p.add_argument("--accel", default="tcg", choices=ACCELS,
                   help="tcg (default); auto uses KVM only after a probe boot succeeds")
    p.add_argument("--cpus", type=int, default=None,
                   help=f"guest vCPUs (default 2; {STRESS_CPUS} for stress scenarios, which "
                        "race on them; 2 for --exec/--repro)")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB (default 1024)")
    p.add_argument("--boot-timeout", type=seconds("--boot-timeout"), default=180.0,
                   help="seconds the guest may take to boot (default 180)")
    p.add_argument("--append", action="append", default=[],
                   help="extra kernel command-line argument (repeatable)")
    add_host_cpus(p)
    p.add_argument("--cpu", default=None,
                   help="QEMU CPU model under TCG (default: the arch's, or an older model "
                        "for old kernels, e.g. cortex-a57 for arm64 kernels before 6.1)")


def add_repro_options(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group()
    what.add_argument("--repro", default=None, metavar="FILE.c",
                      help="your own reproducer instead of a scenario: a C file, built "
                           "statically for the guest's arch and run as /bin/oomrace-repro; "
                           "a run reproduced when it exits non-zero or the kernel reports")
    what.add_argument("--exec", dest="exec_command", default=None, metavar="COMMAND",
                      help="your own reproducer instead of a scenario: a command line for "
                           "the guest's shell, judged as --repro")
    p.add_argument("--repro-timeout", type=seconds("--repro-timeout"), default=None,
                   metavar="SECONDS",
                   help=f"--repro/--exec: seconds one run may take (default "
                        f"{REPRO_RUN_TIMEOUT:g}); a run past it is killed and counts as "
                        "reproduced (timed out: a hang)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    add_guest_options(p)
    add_repro_options(p)
    p.add_argument("--scenario", default=None,
                   help=f"a stress scenario: {STRESS_SCENARIOS}; or {CHECK_WORKLOADS} (boot "
                        "and runners only). Default: the strongest the kernel supports "
                        "(mrelease from Linux 5.15, oom before)")
    p.add_argument("--iterations", type=int, default=0,
                   help="stress: stop after this many iterations; --repro/--exec: runs "
                        "(default: duration only)")
    p.add_argument("--duration", type=seconds("--duration"), default=30.0,
                   help="stress or reproducer: seconds per guest (default 30)")
    p.add_argument("--seed", type=int, default=None, help="stress: random seed")
    p.add_argument("--writers", type=int, default=None,
                   help="stress: writer threads (default: vCPUs - 1)")
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                   help="folder for results; each run gets its own subfolder")
    add_json_option(p, "the result (one run) or {\"runs\": [...]} (several arches)")
    p.add_argument("--format", choices=("text", "ktap"), default="text",
                   help="stdout: text (a summary per guest, default) or ktap (the result in "
                        "the kernel's KTAP v1; the summaries then go to stderr)")


def add_boot_options(p: argparse.ArgumentParser) -> None:
    add_guest_options(p)
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)


def add_doctor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="append", default=None,
                   help=f"check the tools of these arches only: {arch_help()} (repeatable)")
    add_json_option(p, "what is present and what is missing")


def add_parse_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the console log or dmesg to read; '-' reads stdin (a pipe)")
    p.add_argument("--allow", action="append", default=[], metavar="REGEX",
                   help="reports whose title this regex matches (re.search) are expected: "
                        "listed, marked allowed, and do not fail (exit 1); repeatable")
    p.add_argument("--fail-on", action="append", default=[], metavar="REGEX",
                   help="only reports whose title matches one of these fail; --allow wins "
                        "over it; repeatable")
    p.add_argument("--allow-file", action="append", default=[], type=Path, metavar="FILE",
                   help="--allow patterns, one regex per line ('#' starts a comment line); "
                        "repeatable")
    p.add_argument("--vmlinux", type=Path, default=None, metavar="FILE",
                   help="the kernel's vmlinux (built with debug info): each frame of each "
                        "report gets its file:line, as scripts/decode_stacktrace.sh gives")
    p.add_argument("--arch", default=None,
                   help=f"the arch of --vmlinux ({arch_help(with_all=False)}); default: read "
                        "from the file")
    add_json_option(p, "the crash reports (each marked gating or not), the events and the "
                       "gate's result")


def add_kernel_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="recipe name from configs/kernels.toml")
    p.add_argument("--arch", action="append", default=[],
                   help=f"{arch_help()} (repeatable; default aarch64)")
    p.add_argument("--source",
                   help="kernel tree, git repository, tarball (path, file name or URL); with "
                        "--recipe it replaces the recipe's source")
    p.add_argument("--sha256", help="expected sha256 of a tarball source (needed for a URL)")
    p.add_argument("--ref", help="with a git repository as --source: the commit to build")
    p.add_argument("--patch", action="append", default=[], type=Path,
                   help="a patch to apply (patch -p1) after the recipe's; repeatable")
    p.add_argument("--config-from", metavar="RECIPE", default=DEFAULT_CONFIG_RECIPE,
                   help="with --source and no --recipe: the recipe whose base config, "
                        f"fragments and boot options to use (default {DEFAULT_CONFIG_RECIPE})")
    add_kconfig_options(p, "the build")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    add_json_option(p, "the built (or cached) kernels")


def add_bisect_options(p: argparse.ArgumentParser) -> None:
    from ..bisect import CALIBRATION_TRIALS, REPRO_CALIBRATION_TRIALS, TRIAL_ITERATIONS

    p.add_argument("--repo", type=Path, required=True, help="kernel git checkout")
    p.add_argument("--good", help="revision without the bug (with --find-fix: the newer end)")
    p.add_argument("--bad", help="revision with the bug (with --find-fix: the older end)")
    p.add_argument("--arch", default=None, help=f"guest arch ({arch_help(with_all=False)})")
    p.add_argument("--scenario", default=None,
                   help=f"stress scenario: {STRESS_SCENARIOS} (default mrelease)")
    add_repro_options(p)
    p.add_argument("--append", action="append", default=[],
                   help="extra kernel command-line argument (repeatable)")
    p.add_argument("--cpu", default=None,
                   help="QEMU CPU model under TCG (default: by arch and kernel version)")
    p.add_argument("--recipe-config", default=DEFAULT_CONFIG_RECIPE,
                   help="recipe whose base config, fragments and cmdline are used (its "
                        f"patches are not applied; default {DEFAULT_CONFIG_RECIPE})")
    add_kconfig_options(p, "each step's kernel")
    p.add_argument("--confidence", type=confidence, default=0.95,
                   help=f"overall confidence the answer must reach, {MIN_CONFIDENCE} to "
                        f"{MAX_CONFIDENCE} (default 0.95)")
    p.add_argument("--max-iterations-per-step", type=int, default=None,
                   help="cap on the iterations of a good verdict")
    p.add_argument("--trial-iterations", type=int, default=None,
                   help=f"iterations of the scenario in one trial (default "
                        f"{TRIAL_ITERATIONS}; with --exec/--repro one run is a trial)")
    p.add_argument("--calibration-batches", type=int, default=None,
                   help=f"trials on the bad end to estimate the detection rate (default "
                        f"{CALIBRATION_TRIALS}; {REPRO_CALIBRATION_TRIALS} runs with "
                        "--exec/--repro)")
    p.add_argument("--find-fix", action="store_true",
                   help="find the commit that made the bug go away")
    p.add_argument("--resume", action="store_true", help="continue an interrupted bisect")
    p.add_argument("--cpus", type=int, default=None,
                   help=f"guest vCPUs (default {STRESS_CPUS}; 2 with --exec/--repro)")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    p.add_argument("--host-cpus", type=int, default=0,
                   help="host CPUs QEMU may use (default 0: all; unlike `run`, where "
                        f"stress gets {STRESS_HOST_CPUS}: the 6.1 re-enactment detects in "
                        "more trials on all of them; try 1 for 4.14's oom scenario)")
    p.add_argument("--seed", type=int, default=1, help="stress seed (default 1)")
    add_json_option(p, "the report")
    p.add_argument("--artifacts", type=Path, default=None,
                   help="folder for step logs (default oomrace-artifacts/bisect-<time>)")


def add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("list", "prune"), default="list",
                   help="list (default): kernels and build directories with sizes and last "
                        "use; prune: remove what is beyond the limits")
    p.add_argument("--max-dirs", type=int, default=None, metavar="N",
                   help="prune: keep the N build directories used last (default "
                        "$OOMRACE_MAX_BUILD_DIRS or 4, the limit every build applies)")
    p.add_argument("--max-size", type=seconds("--max-size"), default=None, metavar="GIB",
                   help="prune: remove the least recently used build directories until "
                        "they take at most GIB GiB in all")
    p.add_argument("--kernels-unused-for", type=seconds("--kernels-unused-for"),
                   default=None, metavar="DAYS",
                   help="prune: also remove built kernels no build or run has asked for "
                        "in DAYS days (other users of the cache lose them too)")
    add_json_option(p, "the listing, or what was removed")


def add_lab_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="+", metavar="MATRIX | merge DIR...",
                   help="the matrix file, or `merge` and the folders to merge")
    p.add_argument("--out", type=Path, default=None, help="the night's folder")
    p.add_argument("-j", "-n", "--jobs", type=int, default=None,
                   help="guests at once (default: by cores and free memory)")
    p.add_argument("--shard", default=None, help="run only slice i of N (1-based): i/N")
    p.add_argument("--compare", type=Path, default=None,
                   help="previous night (folder or summary.json) to find regressions against")
    p.add_argument("--history", type=Path, default=None,
                   help="folder of previous nights: plotted, and the latest is compared with")
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression over cell ids")
    p.add_argument("--lf", action="store_true", help="run only the cells that failed last time")
    p.add_argument("--list", action="store_true", help="print the (shard's) cell ids and exit")
    lava = p.add_argument_group("LAVA (--engine lava: a LAVA server; lava-run: this "
                                "machine's dispatcher alone)")
    lava.add_argument("--engine", choices=("local", "lava", "lava-run"), default="local",
                      help="where cells run (default local: QEMU under pytest here)")
    lava.add_argument("--lava-url", default=None,
                      help="the server, https://host[/RPC2]; the token comes from "
                           "$OOMRACE_LAVA_TOKEN or --lava-token-file, never the command line")
    lava.add_argument("--lava-user", default=None, help="the user the token belongs to")
    lava.add_argument("--lava-token-file", type=Path, default=None,
                      help="a file holding the token")
    lava.add_argument("--lava-identity", default=None,
                      help="a lavacli identity (lavacli identities add) instead of the URL")
    lava.add_argument("--lava-images-url", default=None,
                      help="URL under which the night's folder is served to the workers "
                           "(default: file:// paths, for workers that share this filesystem)")
    add_json_option(p, "the night's summary (summary.json)")


def add_evaluate_options(p: argparse.ArgumentParser) -> None:
    from ..evaluate import evaluation_names

    p.add_argument("evaluation", nargs="?", default=None,
                   help=f"one of: {', '.join(evaluation_names())} (with --mbox: its bug is "
                        "the base, its fixes run beside the thread's)")
    mail = p.add_mutually_exclusive_group()
    mail.add_argument("--mbox", type=Path, default=None,
                      help="judge every candidate fix in this thread (mbox or mboxrd)")
    p.add_argument("--candidate", action="append", default=None, metavar="MSGID",
                   help="with --mbox: build and judge only the candidates of these messages "
                        "(repeatable; the others that apply get a 'not tried' row)")
    mail.add_argument("--msgid", default=None,
                      help="the thread of this Message-ID, fetched with `b4 am`")
    p.add_argument("--base", default=None,
                   help="with --mbox: the recipe the candidates apply to (e.g. v4.14.2)")
    p.add_argument("--scenario", default=None,
                   help="with --mbox: the scenario (default: the known bug's on that base)")
    p.add_argument("--arch", action="append", default=None,
                   help=f"arches: {arch_help()} (repeatable; default: the evaluation's)")
    p.add_argument("--source", default=None,
                   help="build the recipes from this source instead (tree, git repository, "
                        "tarball or URL) with the same patches")
    p.add_argument("--bug-seconds", type=seconds("--bug-seconds"), default=None,
                   help="stress budget of the bug")
    p.add_argument("--fix-seconds", type=seconds("--fix-seconds"), default=None,
                   help="most a fix run may take")
    add_stress_guest_options(p, "each evaluation")
    p.add_argument("--cpu", default=None, help="QEMU CPU model (default: by kernel version)")
    add_json_option(p, "the table")


def add_stress_guest_options(p: argparse.ArgumentParser, folder_per: str) -> None:
    """The guest and output options of the commands that run stress on recipes."""
    p.add_argument("--cpus", type=int, default=STRESS_CPUS,
                   help=f"guest vCPUs (default {STRESS_CPUS})")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    add_host_cpus(p)
    p.add_argument("--seed", type=int, default=None, help="stress seed")
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                   help=f"folder for results; {folder_per} gets its own subfolder")


def add_check_patch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None,
                   help="the recipe the patch applies to (default v4.14.2)")
    p.add_argument("--source", default=None, help="build the base from this source instead")
    p.add_argument("--evaluation", default=None,
                   help="the known bug (configs/evaluations.toml) whose scenario and budgets "
                        "judge it (default: the one on --base)")
    p.add_argument("--scenario", default=None, help="the scenario (default: the known bug's)")
    p.add_argument("--arch", action="append", default=None,
                   help=f"arches: {arch_help()} (repeatable; default: the known bug's)")
    p.add_argument("--bug-seconds", type=seconds("--bug-seconds"), default=None,
                   help="stress budget of the bug")
    p.add_argument("--fix-seconds", type=seconds("--fix-seconds"), default=None,
                   help="most the patch's run may take")
    p.add_argument("--format", choices=("b4", "patchwork"), default="b4",
                   help="b4: b4 review's JSON list (default); patchwork: a patchwork check")
    p.add_argument("--url", default=None, help="a link to the results, for the check")
    p.add_argument("--context", default=None,
                   help="the patchwork check's context (default oomrace-BASE)")
    p.add_argument("--cpus", type=int, default=STRESS_CPUS,
                   help=f"guest vCPUs (default {STRESS_CPUS})")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    p.add_argument("--cpu", default=None, help="QEMU CPU model (default: by kernel version)")
    add_host_cpus(p)
    p.add_argument("--seed", type=int, default=None, help="stress seed")
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                   help="folder for results")


def add_bugs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="corpus entries (configs/bugs.toml; default: every ready one)")
    p.add_argument("--list", action="store_true", help="print one line per entry and exit")
    p.add_argument("--arch", action="append", default=None,
                   help=f"{arch_help()} (repeatable; default: the entry's arches)")
    p.add_argument("--runs", type=int, default=1,
                   help="bug runs per arch, each to its first detection (default 1; 3 for "
                        "a median time to detection)")
    p.add_argument("--bug-seconds", type=seconds("--bug-seconds"), default=None,
                   help="stress budget of each bug run (default: the entry's)")
    p.add_argument("--fix-seconds", type=seconds("--fix-seconds"), default=None,
                   help="stress budget of the fix run (default: the entry's)")
    add_stress_guest_options(p, "each run of the table")
    add_json_option(p, "the detection table")


def add_record_lkdtm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="append", default=None,
                   help=f"{arch_help()} (repeatable; default all)")
    p.add_argument("--out", type=Path, default=Path("tests/data/lkdtm"),
                   help="folder of the recorded logs, <arch>/<TYPE>.log (default tests/data/lkdtm)")
    p.add_argument("--type", action="append", default=None, dest="types",
                   help="an LKDTM crash type to record (repeatable; default all)")
