"""The real step runner: build the checked-out commit, boot it, stress it."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from .. import verdict
from ..arches import get_arch
from ..errors import KernelError
from ..kernel import resolve
from ..kernel.build import builder, recipes
from ..kernel.image import ResolvedKernel
from ..machine import machine_options
from .engine import BisectAborted
from .state import BisectConfig
from .stats import BATCH_SECONDS
from .steps import StepKind, StepOutcome, StepRequest


@dataclass
class KernelStepRunner:
    """Builds the step's commit (in a build directory of ours, never the user's tree)
    with the recipe's base/fragments/cmdline (not its patches) and runs the scenario (or
    the user's reproducer) on it."""

    config: BisectConfig
    progress: bool = True

    def __call__(self, request: StepRequest) -> StepOutcome:
        from ..run import RunSpec, run_one  # booting pulls in much; keep imports lazy
        from ..workload import REPRO_GRACE, REPRO_NAME

        cfg = self.config
        recipe = recipes.with_kconfig(
            replace(recipes.load_recipe(cfg.recipe_config), patches=()),
            recipes.kconfig_change(cfg.kconfig, cfg.kconfig_add))
        started = time.monotonic()
        try:
            built = builder.build(recipe, cfg.arch, source_path=cfg.repo,
                                 progress=self.progress, commit=request.commit)
        except KernelError as e:
            return StepOutcome(kind="build_failed", error=str(e),
                               seconds=round(time.monotonic() - started, 1),
                               build_seconds=round(time.monotonic() - started, 1))
        build_s = round(time.monotonic() - started, 1)
        if built.source_identity != f"git:{request.commit}":
            raise BisectAborted(f"built {built.source_identity}, expected git:"
                                f"{request.commit}")
        arch = get_arch(cfg.arch)
        options = machine_options(cpus=cfg.cpus, memory_mb=cfg.memory_mb, cpu=cfg.cpu,
                                  cmdline_extra=(*built.cmdline, *cfg.append),
                                  host_cpus=cfg.host_cpus)
        reproducer = cfg.reproducer()
        iterations = request.trials * cfg.iterations_per_trial
        # A budget that the trials, not the clock, end: a stress trial takes at most
        # BATCH_SECONDS, a reproducer's run at most its timeout (--repro-timeout).
        per_trial = reproducer.timeout + REPRO_GRACE if reproducer else BATCH_SECONDS * 2
        # The kernel just built, passed down as it is: run_one resolves nothing.
        kernel = ResolvedKernel(str(built.image), arch, resolve.from_build(built))
        spec = RunSpec(kernel=kernel, scenario=REPRO_NAME if reproducer else cfg.scenario,
                       options=options, iterations=iterations,
                       duration_s=request.trials * per_trial + 30, reproducer=reproducer,
                       seed=request.seed, stop_on_first_detection=request.stop_on_first,
                       batch_iterations=cfg.iterations_per_trial)
        result = run_one(spec, request.workdir)
        work = result.stress or result.workload.repro
        titles = [r.title for r in result.reports]
        trials = work.trials if work else 0
        kind: StepKind = "error" if result.verdict == "error" or (
            result.error and not trials) else "ran"
        return StepOutcome(
            kind=kind, trials=trials, detections=work.detections if work else 0,
            iterations=result.stress.iterations if result.stress else trials,
            checker_corruptions=result.stress.checker_corruptions if result.stress else 0,
            failures=result.workload.repro.failures if result.workload.repro else 0,
            corruption_titles=[t for t in titles if verdict.is_corruption_title(t)],
            crash_titles=[t for t in titles if not verdict.is_corruption_title(t)],
            error=result.error or (work.error if work else None),
            seconds=round(time.monotonic() - started, 1), build_seconds=build_s,
            boot_seconds=result.boot_seconds,
            trial_seconds=round(work.seconds / trials, 2) if work and trials else None,
            first_detection_seconds=result.stress.first_detection_seconds
            if result.stress else None,
            console_log=result.console_log, kernel=str(built.image),
            kernel_built=not built.cached,
        )
