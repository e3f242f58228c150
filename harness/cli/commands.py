"""What each `oomrace` subcommand does with its parsed options: build specs, call the
modules that do the work, print the human summary and hand the result to `--json`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import atomicio, kernel_log, schema, signals, symbolize
from ..arches import parse_arch_list, qemu_argv
from ..errors import EXIT_VERDICT, HarnessError, MissingToolError, UsageError
from ..guest import guest_spec
from ..kernel import resolve
from ..kernel.build import builder, recipes
from ..kernel_log.symbols import location_of
from ..ktap import write as ktap
from ..machine import MachineOptions, machine_options
from ..repro import Reproducer
from ..run import RunResult, RunSpec, new_run_dir, run_one
from ..stress import STRESS_CPUS, Scenario, tcg_host_cpus
from ..tools import doctor
from ..workload import REPRO_NAME, get_workload
from .options import DEFAULT_ARTIFACTS
from .output import STDOUT, write_json, write_result_text

if TYPE_CHECKING:
    from .. import bisect

log = logging.getLogger("harness.cli")

SEED_BUG_COMMAND = "oomrace evaluate v4.14.2"
"""What shows the seed bug caught on its own kernel and the proposed fixes judged."""


def _exit_for(clean: bool) -> int:
    return 0 if clean else EXIT_VERDICT


def _host_cpus(args: argparse.Namespace, stress: bool, scenario: str | None = None) -> int:
    if args.host_cpus is not None:
        return int(args.host_cpus)
    return tcg_host_cpus(scenario) if stress and getattr(args, "accel", "tcg") == "tcg" else 0


def _options(args: argparse.Namespace) -> MachineOptions:
    # `run` without --scenario runs a stress scenario; a user's reproducer gets the plain
    # guest (2 vCPUs on every host CPU; --cpus for a race of its own)
    smoke = args.command != "run" or args.scenario == "smoke" or \
        bool(getattr(args, "repro", None) or getattr(args, "exec_command", None))
    cpus = args.cpus if args.cpus is not None else 2 if smoke else STRESS_CPUS
    return machine_options(cpus=cpus, memory_mb=args.memory, accel=args.accel,
                           boot_timeout=args.boot_timeout, cmdline_extra=args.append,
                           cpu=args.cpu,
                           host_cpus=_host_cpus(args, not smoke, getattr(args, "scenario", None)))


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
    repro = result.workload.repro
    if repro is not None:
        lines.append(f"  repro:   {repro.reproducer.describe()}: {repro.trials} runs, "
                     f"{repro.detections} reproduced ({repro.failures} exited non-zero)")
    titles: dict[str, int] = {}
    for report in result.reports:
        where = location_of(report.symbolized, report.guilty_function)
        title = f"{report.title} ({where})" if where else report.title
        titles[title] = titles.get(title, 0) + 1
    for title, count in list(titles.items())[:5]:
        lines.append(f"  report:  {title}" + (f" (x{count})" if count > 1 else ""))
    if result.symbolization and result.reports:
        lines.append(f"  symbols: {result.symbolization}")
    new_taint = result.taint.new
    if new_taint:
        flags = ", ".join(f"{t.flag} ({t.meaning})" for t in new_taint)
        lines.append(f"  taint:   new during the run: {flags}")
    if result.error:
        lines.append(f"  error:   {result.error.splitlines()[0]}")
    lines += [f"  console: {result.console_log}", f"  dmesg:   {result.dmesg}",
              f"  result:  {Path(result.workdir) / 'result.json'}"]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    if args.format == "ktap" and args.json == STDOUT:
        raise UsageError("--format ktap and --json on stdout both want stdout; give --json "
                         "a FILE")
    specs = _run_specs(args)
    run_dir = new_run_dir(args.artifacts)
    results: list[RunResult] = []
    try:
        _run_guests(specs, run_dir, results)
    finally:  # on SIGTERM or Ctrl-C too: the guests that finished, in the files asked for
        with signals.deferred():
            _write_run(args, len(specs), results, run_dir)
    if args.scenario is None and args.exec_command is None and args.repro is None:
        from ..kernel.build.source import missing_tarball

        seed = recipes.load_recipe("v4.14.2")
        missing = missing_tarball(seed.source, seed.sha256, seed.url)
        then = f"{missing}; then run:" if missing else ""
        print(f"\nThe seed bug (CVE-2017-18202) caught on Linux 4.14.2 through the OOM "
              f"killer, and the fixes from its thread judged side by side: {then}\n"
              f"  {SEED_BUG_COMMAND}", flush=True)
    return _exit_for(all(r.verdict == "clean" for r in results))


def _write_run(args: argparse.Namespace, requested: int, results: list[RunResult],
               run_dir: Path) -> None:
    """The run-level KTAP and --json: one result for one arch, {"runs": [...]} for
    several (however many ran before an interrupt)."""
    if not results:
        return
    document = ktap.run_document(results, args.iterations)
    ktap.write(run_dir / ktap.FILE_NAME, document)
    if args.format == "ktap":  # main() sent the prints to stderr
        write_result_text(document)
    write_json(args.json, results[0].to_json() if requested == 1
               else schema.versioned({"runs": [r.to_json() for r in results]}))


def _run_specs(args: argparse.Namespace) -> list[RunSpec]:
    arches = parse_arch_list(args.arch or ["x86_64"])
    reproducer = _reproducer(args)
    options = _options(args)
    specs = []
    for arch in arches:  # bad kernels and scenarios are refused before anything boots
        if reproducer is not None:
            reproducer.initrd_part(arch)  # a reproducer that does not compile: exit 2 now
        # once: run_one reuses it
        kernel = resolve.resolve_kernel(args.kernel, arch, _kconfig(args))
        scenario = REPRO_NAME if reproducer else \
            args.scenario or Scenario.strongest_for(kernel.release).value
        specs.append(RunSpec(kernel=kernel, scenario=scenario, options=options,
                             iterations=args.iterations, duration_s=args.duration,
                             seed=args.seed, writers=args.writers,
                             reproducer=reproducer).checked())
    return specs


def _run_guests(specs: list[RunSpec], run_dir: Path, results: list[RunResult]) -> None:
    """Run each spec in turn, adding its result to `results` as it ends; an interrupted
    run's result is read back from the result.json run_one wrote on its way out."""
    for spec in specs:
        workdir = run_dir / spec.arch.name
        try:
            result = run_one(spec, workdir)
        except KeyboardInterrupt:
            data = atomicio.read_json_object(workdir / "result.json")
            if data is not None:
                results.append(RunResult.from_json(data))
            raise
        print(_summary(result), flush=True)
        results.append(result)


def _reproducer(args: argparse.Namespace) -> Reproducer | None:
    """--exec or --repro, which replace the scenario."""
    reproducer = Reproducer.from_options(args.exec_command, args.repro, args.repro_timeout)
    if reproducer is not None and args.scenario is not None:
        raise UsageError(f"{reproducer.describe().split()[0]} runs your reproducer instead "
                         f"of a scenario: drop --scenario {args.scenario}")
    return reproducer


def cmd_boot(args: argparse.Namespace) -> int:
    """Boot one guest with the console on this terminal; QEMU's own mux handles keys."""
    from .. import rootfs
    from ..proc import interactive
    from ..ssh import RunKey, free_port

    arch = parse_arch_list(args.arch or ["x86_64"])[0]
    options = _options(args)
    image = resolve.resolve(args.kernel, arch, _kconfig(args))
    run_dir = new_run_dir(args.artifacts)
    key = RunKey.generate()
    key.save(run_dir / "id_ed25519")
    initrd = rootfs.initrd_for(rootfs.build(arch), image.modules_cpio, run_dir)
    port = free_port()
    spec = replace(guest_spec(arch, image, initrd, key, options, run_dir / "console.log",
                              interactive=True), ssh_port=port)
    print(f"console log: {spec.console_log}\n"
          f"ssh: ssh -i {run_dir / 'id_ed25519'} -p {port} root@127.0.0.1\n"
          "quit: Ctrl-A X (or `reboot -f` in the guest)", flush=True)
    return interactive(qemu_argv(arch, spec))


def _kconfig(args: argparse.Namespace) -> recipes.KconfigChange:
    return recipes.kconfig_change(args.kconfig, args.kconfig_add)


def cmd_doctor(args: argparse.Namespace) -> int:
    arches = parse_arch_list(args.arch) if args.arch else None
    report = doctor(arches)
    if args.json != STDOUT:
        print(report.text())
    write_json(args.json, report.to_dict())
    return _exit_for(report.ok)


def cmd_kernel_build(args: argparse.Namespace) -> int:
    """Exit 1 when a build fails (its "verdict"); 2 for a bad option or a missing tool."""
    if args.list:
        for name in recipes.recipe_names():
            print(f"{name:<36} {recipes.load_recipe(name).description}")
        return 0
    recipe = recipes.with_kconfig(
        recipes.recipe_for_cli(args.recipe, args.source, args.config_from, args.patch,
                              args.sha256, args.ref), _kconfig(args))
    arches = parse_arch_list(args.arch or ["aarch64"])
    try:
        results = [builder.build(recipe, a.name, progress=not args.no_progress) for a in arches]
    except (UsageError, MissingToolError):
        raise  # bad input: exit 2 like every command
    except HarnessError as e:
        print(f"oomrace: error: {e}", file=sys.stderr)
        return EXIT_VERDICT
    for r in results:
        if args.json != STDOUT:  # the image path last on stdout, for `$(oomrace kernel build)`
            print(f"{r.recipe} {r.arch.name} ({r.kernel_version}): "
                  f"{'cached' if r.cached else 'built'}", file=sys.stderr)
            print(r.image)
    write_json(args.json, [r.to_dict() for r in results])
    return 0


def cmd_parse_log(args: argparse.Namespace) -> int:
    path, destination = args.file, args.json
    if args.arch is not None and args.vmlinux is None:
        raise UsageError("parse-log --arch names the arch of --vmlinux; give --vmlinux FILE")
    # The patterns and the vmlinux are checked before the log is read: a typo or a wrong
    # file fails at once, stdin unread.
    gate = kernel_log.build_gate(args.allow, args.fail_on, args.allow_file)
    symbolizer = symbolize.symbolizer_for(args.vmlinux, args.arch) if args.vmlinux else None
    analysis = kernel_log.parse_file(path)
    if symbolizer is not None:
        analysis, note = symbolize.symbolize_analysis(analysis, symbolizer)
        if note:
            print(f"oomrace parse-log: {note}", file=sys.stderr)
    gated = gate.apply(analysis)
    if destination != STDOUT:  # with --json on stdout the JSON is the whole output
        print(kernel_log.summary(gated, kernel_log.log_name(path)))
    write_json(destination, schema.versioned(gated.to_dict()))
    return _exit_for(not gated.gating)


def cmd_bisect(args: argparse.Namespace) -> int:
    from .. import bisect

    try:
        if args.resume:
            state = bisect.resume(args.repo, lambda c: bisect.KernelStepRunner(c))
        else:
            config = _bisect_config(args)
            state = bisect.start(config, bisect.KernelStepRunner(config))
    except KeyboardInterrupt:
        print(f"oomrace: bisect interrupted; the repository keeps its bisect state, continue "
              f"with: oomrace bisect --repo {args.repo} --resume", file=sys.stderr)
        raise
    print(bisect.report_text(state), flush=True)
    write_json(args.json, bisect.report_json(state))
    return _exit_for(state.result is not None and bool(state.result.commit))


def _bisect_config(args: argparse.Namespace) -> bisect.BisectConfig:
    from .. import bisect

    missing = [f"--{n}" for n in ("good", "bad", "arch") if getattr(args, n) is None]
    if missing:
        raise UsageError(f"bisect needs {', '.join(missing)} (or --resume)")
    arch = parse_arch_list([args.arch])
    if len(arch) != 1:
        raise UsageError("bisect needs a single --arch")
    reproducer = _reproducer(args)
    if reproducer is not None:
        reproducer.initrd_part(arch[0])  # a reproducer that does not compile: exit 2 now
    else:
        get_workload(args.scenario or "mrelease")
    recipes.load_recipe(args.recipe_config)
    change = _kconfig(args)
    artifacts = args.artifacts or DEFAULT_ARTIFACTS / f"bisect-{_bisect_stamp()}"
    return bisect.BisectConfig(
        repo=args.repo, good=args.good, bad=args.bad, arch=arch[0].name,
        scenario=args.scenario or "mrelease", recipe_config=args.recipe_config,
        confidence=args.confidence, max_iterations_per_step=args.max_iterations_per_step,
        calibration_batches=args.calibration_batches, find_fix=args.find_fix,
        trial_iterations=args.trial_iterations,
        artifacts=artifacts, memory_mb=args.memory, seed=args.seed,
        cpus=args.cpus if args.cpus is not None else 2 if reproducer else STRESS_CPUS,
        repro=None if reproducer is None or reproducer.source is None
        else str(reproducer.source),
        exec_command=reproducer.exec_command if reproducer else None,
        repro_timeout=args.repro_timeout if reproducer else None,
        append=list(args.append), cpu=args.cpu, host_cpus=args.host_cpus,
        kconfig=str(change.base) if change.base else None, kconfig_add=list(change.add))


def _bisect_stamp() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


MAX_PRUNE_GIB = 1e9
"""The largest --max-size (an exabyte): beyond it GiB do not convert to a byte count."""


def cmd_cache(args: argparse.Namespace) -> int:
    from ..kernel.build import prune

    if args.action == "list":
        if args.max_dirs is not None or args.max_size is not None \
                or args.kernels_unused_for is not None:
            raise UsageError("--max-dirs, --max-size and --kernels-unused-for are limits "
                             "for `oomrace cache prune`")
        data = prune.listing()
        if args.json != STDOUT:
            print(prune.text(data))
    else:
        if args.max_dirs is not None and args.max_dirs < 0:
            raise UsageError("--max-dirs must be >= 0")
        max_dirs = prune.max_build_dirs() if args.max_dirs is None and \
            args.max_size is None else args.max_dirs
        if args.max_size is not None and args.max_size > MAX_PRUNE_GIB:
            raise UsageError(f"--max-size must be at most {MAX_PRUNE_GIB:g} GiB, not "
                             f"{args.max_size:g}")
        max_bytes = None if args.max_size is None else int(args.max_size * (1 << 30))
        data = prune.prune(max_dirs, max_bytes, args.kernels_unused_for)
        if args.json != STDOUT:
            for what in ("removed_build_dirs", "removed_kernels"):
                items = data[what]
                assert isinstance(items, list)
                print(f"{what.replace('_', ' ')}: {len(items)}")
                for item in items:
                    print(f"  {item['path']}")
    write_json(args.json, schema.versioned(data))
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from .. import lab

    if args.json is not None and args.list:
        raise UsageError("--list prints cell ids; --json is for a night's summary")
    code = lab.main(args)
    if args.json is not None and args.out is not None:
        summary = atomicio.read_json_object(args.out / "summary.json")
        if summary is None:
            raise HarnessError(f"the night left no readable {args.out / 'summary.json'}")
        write_json(args.json, summary)
    return code


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .. import evaluate

    if args.mbox is not None or args.msgid is not None:  # a thread's candidates: harness/mail
        from ..mail.cli import cmd_evaluate_thread

        return cmd_evaluate_thread(args, _stress_options(args))
    if args.evaluation is None:
        raise UsageError("give an evaluation NAME, or a thread with --mbox FILE / --msgid ID")
    if args.base is not None or args.scenario is not None:
        raise UsageError("--base and --scenario go with --mbox or --msgid")
    ev = evaluate.with_budget(evaluate.load_evaluation(args.evaluation), args.bug_seconds,
                              args.fix_seconds)
    arches = parse_arch_list(args.arch or list(ev.arches))
    options = _stress_options(args)(ev.scenario)
    out = new_run_dir(args.artifacts)
    rows: list[evaluate.Row] = []
    try:
        evaluate.evaluate(ev, arches, out, options, evaluate.recipe_resolver(args.source),
                          seed=args.seed, rows=rows, progress=log.info)
    finally:  # interrupted or failed: the rows finished so far are kept
        evaluate.write_json(out / "evaluation.json", ev, rows)
    write_json(args.json, evaluate.to_json(ev, rows))
    print(f"{ev.description}\n\n{evaluate.table(rows)}\n\nresults: {out}", flush=True)
    bug_shows = any(r.role == "bug" and r.verdict == "corrupted" for r in rows)
    fixes_hold = all(r.judgement.startswith(("fixes it", "no judgement: the bug does not"))
                     for r in rows if r.role == "fix")
    return _exit_for(bug_shows and fixes_hold)


def _stress_options(args: argparse.Namespace) -> Callable[[str], MachineOptions]:
    """The machine options of a command that stresses recipes, once its scenario is known
    (host CPUs go by scenario under TCG)."""
    def for_scenario(scenario: str) -> MachineOptions:
        return machine_options(cpus=args.cpus, memory_mb=args.memory, cpu=args.cpu,
                               host_cpus=_host_cpus(args, True, scenario))

    return for_scenario


def cmd_check_patch(args: argparse.Namespace) -> int:
    from ..mail.cli import cmd_check_patch as check

    if args.base is None and args.evaluation is None and args.source is None:
        args.base = "v4.14.2"
    return check(args, _stress_options(args))

def cmd_bugs(args: argparse.Namespace) -> int:
    from .. import bugs, evaluate

    corpus = bugs.load_bugs()
    if args.list:
        for entry in corpus:
            print(entry.line())
        return 0
    if args.runs < 1:
        raise UsageError(f"--runs must be at least 1, not {args.runs}")
    chosen = bugs.select(corpus, args.ids)
    planned = [b.id for b in chosen if not b.ready]
    if planned:
        raise UsageError(f"bug {planned[0]} is planned, not ready: `oomrace bugs --list` says "
                         "what it still needs")
    out = new_run_dir(args.artifacts)
    resolve = evaluate.recipe_resolver(None)
    rows: list[bugs.Row] = []
    try:
        for entry in chosen:
            entry = replace(entry, bug_seconds=args.bug_seconds or entry.bug_seconds,
                            fix_seconds=args.fix_seconds or entry.fix_seconds)
            options = machine_options(cpus=args.cpus, memory_mb=args.memory,
                                      host_cpus=_host_cpus(args, True, entry.scenario))
            for arch in parse_arch_list(args.arch or list(entry.arches())):
                rows.append(bugs.run_bug(entry, arch, out, options, resolve, runs=args.runs,
                                         seed=args.seed, progress=log.info))
    finally:  # interrupted or failed: the rows finished so far are kept
        bugs.write_json(out / "bugs.json", rows)
    write_json(args.json, bugs.to_json(rows))
    print(f"{bugs.table(rows)}\n\nresults: {out}", flush=True)
    return _exit_for(bugs.all_hold(rows))


def cmd_record_lkdtm(args: argparse.Namespace) -> int:
    from .. import lkdtm

    return lkdtm.record(args.arch or ["all"], args.out, args.types)
