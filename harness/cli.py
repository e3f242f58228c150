"""The `oomrace` command. It parses flags into specs and prints summaries; the work is
done by the modules it calls."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import atomicio, kbuild, kernel_log, kernels, schema, signals
from .arches import GuestSpec, arch_help, parse_arch_list, qemu_argv
from .errors import EXIT_BAD_INPUT, HarnessError, UsageError, harness_bug
from .guest import guest_cmdline
from .inputs import OneLineParser, positive_number
from .machine import MachineOptions
from .run import RunResult, RunSpec, new_run_dir, run_one
from .stress import Scenario
from .tools import doctor_report
from .workload import get_workload

DEFAULT_ARTIFACTS = Path("oomrace-artifacts")


def _add_guest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="append", default=None,
                   help=f"guest arch: {arch_help()} (repeatable; default x86_64)")
    p.add_argument("--kernel", default="debian",
                   help="debian (Debian's packaged kernel), a kernel recipe name, or a path")
    p.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"),
                   help="tcg (default); auto uses KVM only after a probe boot succeeds")
    p.add_argument("--cpus", type=int, default=None,
                   help="guest vCPUs (default 2; 8 for stress scenarios, which race on them)")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB (default 1024)")
    p.add_argument("--boot-timeout", type=_seconds("--boot-timeout"), default=180.0,
                   help="seconds the guest may take to boot (default 180)")
    p.add_argument("--append", action="append", default=[],
                   help="extra kernel command-line argument (repeatable)")
    _add_host_cpus(p)
    p.add_argument("--cpu", default=None,
                   help="QEMU CPU model under TCG (default: the arch's, or an older model "
                        "for old kernels, e.g. cortex-a57 for arm64 kernels before 6.1)")


STRESS_CPUS = 8


def _seconds(option: str) -> Callable[[str], float]:
    """An argparse type for a duration: finite and > 0 (float() takes nan and inf)."""
    def parse(text: str) -> float:
        try:
            return positive_number(text, option)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


STRESS_HOST_CPUS = 1
"""Host CPUs for a stress guest under TCG: see machine.host_cpu_set for why."""


def _add_host_cpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host-cpus", type=int, default=None,
                   help="host CPUs QEMU may use, 0 for all (default: all for smoke, "
                        f"{STRESS_HOST_CPUS} for stress under TCG, where the race shows when "
                        "the host pauses a writer's vCPU)")


def _host_cpus(args: argparse.Namespace, stress: bool) -> int:
    if args.host_cpus is not None:
        if args.host_cpus < 0:
            raise UsageError("--host-cpus must be >= 0 (0: all host CPUs)")
        return int(args.host_cpus)
    return STRESS_HOST_CPUS if stress and getattr(args, "accel", "tcg") == "tcg" else 0


def _options(args: argparse.Namespace) -> MachineOptions:
    # `run` without --scenario runs a stress scenario
    smoke = args.command != "run" or args.scenario == "smoke"
    cpus = args.cpus if args.cpus is not None else 2 if smoke else STRESS_CPUS
    if cpus < 1 or args.memory < 128:
        raise HarnessError("--cpus must be at least 1 and --memory at least 128 (MiB)")
    return MachineOptions(cpus=cpus, memory_mb=args.memory, accel=args.accel,
                          boot_timeout=args.boot_timeout, cmdline_extra=tuple(args.append),
                          cpu=args.cpu, host_cpus=_host_cpus(args, not smoke))


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineParser(
        prog="oomrace",
        description="Catch and bisect OOM-reaper memory-corruption races on real kernels "
                    "booted under QEMU.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="boot guests, run a scenario, decide a verdict")
    _add_guest_options(run)
    run.add_argument("--scenario", default=None,
                     help="a stress scenario: mrelease, oom, munmap, madvise; or smoke (boot "
                          "and runners only). Default: the strongest the kernel supports "
                          "(mrelease from Linux 5.15, oom before)")
    run.add_argument("--iterations", type=int, default=0,
                     help="stress: stop after this many iterations (default: duration only)")
    run.add_argument("--duration", type=_seconds("--duration"), default=30.0,
                     help="stress: seconds of stress per guest (default 30)")
    run.add_argument("--seed", type=int, default=None, help="stress: random seed")
    run.add_argument("--writers", type=int, default=None,
                     help="stress: writer threads (default: vCPUs - 1)")
    run.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                     help="folder for results; each run gets its own subfolder")
    run.add_argument("--json", type=Path, default=None, help="also write the results here")

    boot = sub.add_parser("boot", help="boot a guest and attach its console (Ctrl-A X quits)")
    _add_guest_options(boot)
    boot.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)

    doctor = sub.add_parser("doctor", help="list missing host tools and how to install them")
    doctor.add_argument("--arch", action="append", default=None)

    kernel = sub.add_parser("kernel", help="kernel recipes: build one (kernel build --help)",
                            add_help=False)
    kernel.add_argument("kernel_args", nargs=argparse.REMAINDER)

    parse_log = sub.add_parser("parse-log", help="find crash reports in a console log")
    parse_log.add_argument("file")
    parse_log.add_argument("--json", action="store_true", help="print JSON")
    _add_bisect_parser(sub)
    _add_lab_parser(sub)
    _add_evaluate_parser(sub)
    return parser


def _summary(result: RunResult) -> str:
    lines = [
        f"{result.arch}: {result.verdict.upper()} ({result.reason})",
        f"  kernel:  {result.kernel_description or result.kernel}",
    ]
    if result.boot_seconds is not None:
        lines.append(f"  boot:    {result.boot_seconds:.1f} s ({result.accel})")
    work = result.stress
    if work is not None:
        low, high = work.ci95
        rate = "n/a" if work.rate is None else f"{work.rate:.2f} [{low:.2f}, {high:.2f}]"
        lines.append(f"  stress:  {result.workload.name}: {work.iterations} iterations in "
                     f"{work.trials} batches, {work.detections} with corruption, "
                     f"rate {rate}, checker records {work.checker_corruptions}")
    titles: dict[str, int] = {}
    for report in result.reports:
        titles[report.title] = titles.get(report.title, 0) + 1
    for title, count in list(titles.items())[:5]:
        lines.append(f"  report:  {title}" + (f" (x{count})" if count > 1 else ""))
    new_taint = result.taint.new
    if new_taint:
        flags = ", ".join(f"{t.flag} ({t.meaning})" for t in new_taint)
        lines.append(f"  taint:   new during the run: {flags}")
    if result.error:
        lines.append(f"  error:   {result.error.splitlines()[0]}")
    lines += [f"  console: {result.console_log}", f"  dmesg:   {result.dmesg}",
              f"  result:  {Path(result.workdir) / 'result.json'}"]
    return "\n".join(lines)


SEED_BUG_COMMAND = "oomrace evaluate v4.14.2"
"""What shows the seed bug caught on its own kernel and the proposed fixes judged."""


def cmd_run(args: argparse.Namespace) -> int:
    arches = parse_arch_list(args.arch or ["x86_64"])
    options = _options(args)
    specs = []
    for arch in arches:  # bad kernels and scenarios are refused before anything boots
        kernel = kernels.resolve_kernel(args.kernel, arch)  # once: run_one reuses it
        scenario = args.scenario or Scenario.strongest_for(kernel.release).value
        specs.append(RunSpec(kernel=kernel, scenario=scenario, options=options,
                             iterations=args.iterations, duration_s=args.duration,
                             seed=args.seed, writers=args.writers).checked())
    run_dir = new_run_dir(args.artifacts)
    results = []
    for spec in specs:
        result = run_one(spec, run_dir / spec.arch.name)
        print(_summary(result), flush=True)
        results.append(result)
    if args.scenario is None:
        print(f"\nThe seed bug (CVE-2017-18202) caught on Linux 4.14.2 through the OOM "
              f"killer, and the fixes from its thread judged side by side:\n  {SEED_BUG_COMMAND}",
              flush=True)
    if args.json is not None:
        payload = (results[0].to_json() if len(results) == 1
                   else schema.versioned({"runs": [r.to_json() for r in results]}))
        atomicio.write_json(args.json, payload)
    return 0 if all(r.verdict == "clean" for r in results) else 1


def cmd_boot(args: argparse.Namespace) -> int:
    """Boot one guest with the console on this terminal; QEMU's own mux handles keys."""
    import subprocess

    from . import rootfs
    from .ssh import RunKey, free_port

    arch = parse_arch_list(args.arch or ["x86_64"])[0]
    options = _options(args)
    image = kernels.resolve(args.kernel, arch)
    run_dir = new_run_dir(args.artifacts)
    key = RunKey.generate()
    key.save(run_dir / "id_ed25519")
    initrd = rootfs.initrd_for(rootfs.build(arch), image.modules_cpio, run_dir)
    port = free_port()
    cmdline = guest_cmdline(arch, image, key, options.cmdline_extra)
    spec = GuestSpec(kernel=image.path, initrd=initrd, cmdline=cmdline,
                     console_log=run_dir / "console.log", cpus=options.cpus,
                     memory_mb=options.memory_mb, accel=options.accel if options.accel != "auto"
                     else "tcg", ssh_port=port, interactive=True,
                     cpu=options.cpu or arch.cpu_for(image.release))
    print(f"console log: {spec.console_log}\n"
          f"ssh: ssh -i {run_dir / 'id_ed25519'} -p {port} root@127.0.0.1\n"
          "quit: Ctrl-A X (or `reboot -f` in the guest)", flush=True)
    return subprocess.run(qemu_argv(arch, spec), check=False).returncode


def cmd_doctor(args: argparse.Namespace) -> int:
    arches = parse_arch_list(args.arch) if args.arch else None
    ok, report = doctor_report(arches)
    print(report)
    return 0 if ok else 1


def cmd_kernel(args: argparse.Namespace) -> int:
    rest = list(args.kernel_args)
    usage = "oomrace kernel build --recipe NAME --arch ARCH [--source PATH] [--list] [--json]"
    if not rest:  # a bad invocation: the one-line error on stderr, like every other
        raise UsageError(f"kernel needs a command: {usage}")
    if rest[0] in ("-h", "--help"):
        print(f"usage: {usage}")
        return 0
    if rest[0] != "build":
        raise HarnessError(f"unknown kernel command {rest[0]!r}; valid: build")
    return kbuild.main_kernel_build(rest[1:])


def cmd_parse_log(args: argparse.Namespace) -> int:
    return kernel_log.parse_log_main(args.file, args.json)


def _add_bisect_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .bisect import BATCH_ITERATIONS

    p = sub.add_parser(
        "bisect", help="git-bisect a kernel tree for the commit that brought (or fixed) a bug",
        description="Drive `git bisect` over a kernel git tree: build each commit, boot it, "
                    "run the scenario; a commit is bad as soon as the bug's signature shows, "
                    "good after enough clean trials for --confidence. Ctrl-C keeps the "
                    "bisect; --resume continues it.")
    p.add_argument("--repo", type=Path, required=True, help="kernel git checkout")
    p.add_argument("--good", help="revision without the bug (with --find-fix: the newer end)")
    p.add_argument("--bad", help="revision with the bug (with --find-fix: the older end)")
    p.add_argument("--arch", default=None, help=f"guest arch ({arch_help(with_all=False)})")
    p.add_argument("--scenario", default="mrelease", help="stress scenario (default mrelease)")
    p.add_argument("--recipe-config", default="v6.1",
                   help="recipe whose base config, fragments and cmdline are used (its "
                        "patches are not applied; default v6.1)")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="overall confidence the answer must reach (default 0.95)")
    p.add_argument("--max-iterations-per-step", type=int, default=None,
                   help=f"cap on the iterations of a good verdict ({BATCH_ITERATIONS} per trial)")
    p.add_argument("--calibration-batches", type=int, default=6,
                   help=f"trials ({BATCH_ITERATIONS} iterations each) on the bad end to "
                        "estimate the detection rate (default 6)")
    p.add_argument("--find-fix", action="store_true",
                   help="find the commit that made the bug go away")
    p.add_argument("--resume", action="store_true", help="continue an interrupted bisect")
    p.add_argument("--cpus", type=int, default=STRESS_CPUS, help="guest vCPUs (default 8)")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    p.add_argument("--seed", type=int, default=1, help="stress seed (default 1)")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--artifacts", type=Path, default=None,
                   help="folder for step logs (default oomrace-artifacts/bisect-<time>)")


def cmd_bisect(args: argparse.Namespace) -> int:
    from . import bisect

    try:
        if args.resume:
            state = bisect.resume(args.repo, lambda c: bisect.KernelStepRunner(c))
        else:
            missing = [f"--{n}" for n in ("good", "bad", "arch") if getattr(args, n) is None]
            if missing:
                raise UsageError(f"bisect needs {', '.join(missing)} (or --resume)")
            arch = parse_arch_list([args.arch])
            if len(arch) != 1:
                raise UsageError("bisect needs a single --arch")
            get_workload(args.scenario)
            kbuild.load_recipe(args.recipe_config)
            artifacts = args.artifacts or DEFAULT_ARTIFACTS / f"bisect-{_bisect_stamp()}"
            config = bisect.BisectConfig(
                repo=args.repo, good=args.good, bad=args.bad, arch=arch[0].name,
                scenario=args.scenario, recipe_config=args.recipe_config,
                confidence=args.confidence,
                max_iterations_per_step=args.max_iterations_per_step,
                calibration_batches=args.calibration_batches, find_fix=args.find_fix,
                artifacts=artifacts, cpus=args.cpus, memory_mb=args.memory, seed=args.seed)
            state = bisect.start(config, bisect.KernelStepRunner(config))
    except KeyboardInterrupt:
        print(f"oomrace: bisect interrupted; the repository keeps its bisect state, continue "
              f"with: oomrace bisect --repo {args.repo} --resume", file=sys.stderr)
        raise
    print(bisect.report_text(state), flush=True)
    if args.json is not None:
        atomicio.write_json(args.json, bisect.report_json(state))
    return 0 if (state.result or {}).get("commit") else 1


def _bisect_stamp() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _add_lab_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lab", help="nightly lab: run a matrix of cells in parallel, or merge shard outputs",
        description="Run the cells of a matrix file (configs/nightly.toml) as pytest tests "
                    "in parallel, writing summary.json, junit.xml and report.html into --out; "
                    "or `lab merge DIR... --out DIR` to join shard outputs into one night. "
                    "Exit: 0 as expected, 1 a cell not as expected, 3 a regression against "
                    "the previous night, 130 interrupted.")
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


def _add_evaluate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .evaluate import evaluation_names

    p = sub.add_parser(
        "evaluate", help="which fix works? a bug and each proposed fix, side by side",
        description="Run the bug's kernel and each candidate fix (configs/evaluations.toml) "
                    "on every arch and print one row per recipe and arch: verdict, "
                    "detections per batch with a 95%% interval, the evidence, and whether the "
                    "fix's interval lies below the bug's. Exit 0 when the bug shows on some "
                    "arch and every fix is judged to fix it there.")
    p.add_argument("evaluation", help=f"one of: {', '.join(evaluation_names())}")
    p.add_argument("--arch", action="append", default=None,
                   help="arches (repeatable, or all; default: the evaluation's)")
    p.add_argument("--source", default=None,
                   help="build the recipes from this source instead (tree, git repository, "
                        "tarball or URL) with the same patches")
    p.add_argument("--bug-seconds", type=_seconds("--bug-seconds"), default=None,
                   help="stress budget of the bug")
    p.add_argument("--fix-seconds", type=_seconds("--fix-seconds"), default=None,
                   help="most a fix run may take")
    p.add_argument("--cpus", type=int, default=STRESS_CPUS, help="guest vCPUs (default 8)")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    p.add_argument("--cpu", default=None, help="QEMU CPU model (default: by kernel version)")
    _add_host_cpus(p)
    p.add_argument("--seed", type=int, default=None, help="stress seed")
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                   help="folder for results; each evaluation gets its own subfolder")
    p.add_argument("--json", type=Path, default=None, help="also write the table here")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import evaluate

    ev = evaluate.with_budget(evaluate.load_evaluation(args.evaluation), args.bug_seconds,
                              args.fix_seconds)
    arches = parse_arch_list(args.arch or list(ev.arches))
    if args.cpus < 1 or args.memory < 128:
        raise HarnessError("--cpus must be at least 1 and --memory at least 128 (MiB)")
    options = MachineOptions(cpus=args.cpus, memory_mb=args.memory, cpu=args.cpu,
                             host_cpus=_host_cpus(args, stress=True))
    out = new_run_dir(args.artifacts)
    rows: list[evaluate.Row] = []
    try:
        evaluate.evaluate(ev, arches, out, options, evaluate.recipe_resolver(args.source),
                          seed=args.seed, rows=rows,
                          progress=lambda s: print(s, file=sys.stderr, flush=True))
    finally:  # interrupted or failed: the rows finished so far are kept
        evaluate.write_json(out / "evaluation.json", ev, rows)
    if args.json is not None:
        evaluate.write_json(args.json, ev, rows)
    print(f"{ev.description}\n\n{evaluate.table(rows)}\n\nresults: {out}", flush=True)
    bug_shows = any(r.role == "bug" and r.verdict == "corrupted" for r in rows)
    fixes_hold = all(r.judgement.startswith(("fixes it", "no judgement: the bug does not"))
                     for r in rows if r.role == "fix")
    return 0 if bug_shows and fixes_hold else 1


def cmd_lab(args: argparse.Namespace) -> int:
    from . import lab

    return lab.main(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a bad option (argparse printed why)
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    signals.install()  # SIGTERM and SIGHUP take Ctrl-C's path: guests stopped, logs kept
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run,
        "boot": cmd_boot,
        "doctor": cmd_doctor,
        "parse-log": cmd_parse_log,
        "kernel": cmd_kernel,
        "bisect": cmd_bisect,
        "lab": cmd_lab,
        "evaluate": cmd_evaluate,
    }
    try:
        return int(handlers[args.command](args))
    except HarnessError as e:
        print(f"oomrace: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        print(f"oomrace: interrupted{f' ({e})' if str(e) else ''}", file=sys.stderr)
        return signals.exit_status(e)
    except BrokenPipeError:
        # The reader went away (`oomrace ... | head`): not an error worth a traceback.
        sys.stderr.close()
        return 141
    except Exception as e:  # a harness bug: one line here, the traceback in a file
        return harness_bug("oomrace", e)


if __name__ == "__main__":
    sys.exit(main())
