"""Running a night: select the cells (shard, -k, --lf), make ready what they need, run
them under pytest with pytest-xdist, then write the night; and `lab merge`."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import signals
from ..errors import HarnessError, UsageError, shown
from ..paths import PROJECT_ROOT
from ..proc import end_group, run
from . import lava
from .cells import PLAN_ENV, TOTAL_ENV, Plan, prepare
from .lava import LavaTarget, target_from_args
from .matrix import Cell, Matrix, load_matrix
from .night import (
    NightSummary,
    exit_code,
    finish_night,
    history_nights,
    make_out_dir,
    make_summary,
    merge,
    print_night,
    read_summary,
)
from .record import CellRecord, cell_dir, read_records

CELLS_MODULE = PROJECT_ROOT / "tests" / "lab" / "lab_cells.py"
PLUGIN = "harness.lab.plugin"
GUEST_OVERHEAD_MB = 512  # host memory a guest needs beyond its own RAM (QEMU, TCG cache)


# --- selecting cells -------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    # At most 9 digits each: a shard count beyond that is a typo, and int() of thousands
    # of digits raises.
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", text)
    if match is None:
        raise UsageError(f"--shard must be i/N with 1 <= i <= N, not {shown(text)!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard must be i/N with 1 <= i <= N, not {shown(text)!r}")
    return index, count


def shard_cells(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Shard `index` of `count` (1-based): round-robin over the sorted cell ids, so every
    machine computes the same slices, the slices are disjoint, and together they are all."""
    order = sorted(c.id for c in cells)
    mine = {cid for n, cid in enumerate(order) if n % count == index - 1}
    return [c for c in cells if c.id in mine]


def mem_available_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2048


def default_jobs(cells: Sequence[Cell], cores: int | None = None,
                 mem_free_mb: int | None = None) -> int:
    """Guests at once: half the cores (TCG guests run several vCPU threads each), and no
    more than the free memory holds; at least one, at most one per cell."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    mem_free_mb = mem_free_mb if mem_free_mb is not None else mem_available_mb()
    guest = max((c.memory_mb for c in cells), default=1024) + GUEST_OVERHEAD_MB
    jobs = max(1, min(cores // 2, mem_free_mb // guest))
    return max(1, min(jobs, len(cells))) if cells else 1


# --- pytest ----------------------------------------------------------------------------------


def _pytest_argv(out: Path, cache_dir: Path, args: argparse.Namespace, jobs: int | None,
                 collect_only: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "pytest", str(CELLS_MODULE), "-p", PLUGIN,
            "--rootdir", str(PROJECT_ROOT), "-o", f"cache_dir={cache_dir}",
            "-o", "junit_family=xunit1", "--no-header", "-q", "-p", "no:randomly",
            "-p", "no:benchmark"]
    if collect_only:
        argv += ["--collect-only"]
    else:
        argv += ["-n", str(jobs), "--dist", "worksteal", "-rN",
                 f"--junitxml={out / 'pytest-junit.xml'}", "--oomrace-artifacts", str(out)]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.lf:
        argv += ["--lf"]
    return argv


def _collect(argv: list[str], env: Mapping[str, str]) -> list[str]:
    proc = run(argv, env=env, cwd=PROJECT_ROOT, timeout=300, check=False)
    ids = re.findall(r"::test_cell\[([^\]]+)\]", proc.stdout)
    if proc.returncode not in (0, 5):  # 5: nothing collected (all deselected)
        raise HarnessError(f"selecting cells with pytest failed:\n{proc.stdout[-2000:]}"
                           f"{proc.stderr[-2000:]}")
    return ids


def _start_pytest(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """pytest and its xdist workers in a process group of their own, which the lab
    signals as a whole (_stop); pytest gets SIGTERM if the lab dies, even by SIGKILL."""
    return subprocess.Popen(argv, env=dict(env), cwd=PROJECT_ROOT, process_group=0,
                            preexec_fn=signals.on_parent_death(signal.SIGTERM))


def _stop(proc: subprocess.Popen[bytes], signum: int) -> None:
    """After Ctrl-C, SIGTERM or SIGHUP: the same signal to pytest and every worker (their
    own group, which a terminal's Ctrl-C does not reach), so each cell ends as on Ctrl-C
    and shuts its guest down; SIGKILL only if they do not end within two minutes."""
    end_group(proc, grace=120.0, first=signum)


# --- a night ---------------------------------------------------------------------------------


def _previous(args: argparse.Namespace, out: Path) -> NightSummary | None:
    if args.compare is not None:
        return read_summary(args.compare)
    nights = history_nights(args.history, exclude=out)
    return nights[-1] if nights else None


@dataclass
class _Night:
    """A night being run: its plan, where pytest runs, and how it ended."""

    matrix: Matrix
    plan: Plan
    plan_path: Path
    args: argparse.Namespace
    cache_dir: Path
    env: dict[str, str]
    interrupted: bool = False
    stopped_by: int = signal.SIGINT  # the signal that interrupted it, for the exit status

    @property
    def out(self) -> Path:
        return self.plan.out

    def argv(self, jobs: int | None, collect_only: bool = False) -> list[str]:
        return _pytest_argv(self.out, self.cache_dir, self.args, jobs, collect_only)

    def select(self) -> list[Cell]:
        """The cells -k and --lf leave (pytest decides, as it will in the run)."""
        if not (self.args.keyword or self.args.lf):
            return self.plan.cells
        ids = set(_collect(self.argv(None, collect_only=True), self.env))
        return [c for c in self.plan.cells if c.id in ids]

    def run(self, selected: list[Cell], jobs: int) -> None:
        """Make ready what the cells need (each kernel resolved once for the night),
        then run them under pytest."""
        prepared = prepare(selected)
        self.plan.build_errors, self.plan.kernels = prepared.errors, prepared.kernels
        for key, message in prepared.errors.items():
            print(f"[lab] build failed: {key}: {message.splitlines()[0]}", flush=True)
        self.plan.write()
        self.env[TOTAL_ENV] = str(len(selected))
        proc = _start_pytest(self.argv(jobs), self.env)
        try:
            code = proc.wait()
            finished = read_records(self.out, [c.id for c in selected])
            self.interrupted = code == 2 and len(finished) < len(selected)
        except KeyboardInterrupt as e:
            self.interrupted = True
            self.stopped_by = signals.exit_status(e) - 128
            _stop(proc, self.stopped_by)

    def run_lava(self, selected: list[Cell], jobs: int, target: LavaTarget) -> None:
        """The cells as LAVA jobs, after the same preparation as a local night."""
        prepared = prepare(selected)
        self.plan.build_errors, self.plan.kernels = prepared.errors, prepared.kernels
        self.plan.write()
        done = [0]

        def progress(record: CellRecord) -> None:
            done[0] += 1
            print(f"[lab {done[0]}/{len(selected)} done] {'PASS' if record.passed else 'FAIL'}"
                  f" {record.cell.id}: {record.verdict} (expected {record.cell.expected})",
                  flush=True)

        try:
            lava.run_cells(self.plan, selected, jobs, target, progress)
        except KeyboardInterrupt as e:
            self.interrupted = True
            self.stopped_by = signals.exit_status(e) - 128


def _lava_target(args: argparse.Namespace) -> LavaTarget | None:
    """The LAVA server or dispatcher of --engine lava / lava-run; None for the local
    engine (whose night refuses the LAVA options)."""
    engine = getattr(args, "engine", "local")
    if engine == "local":
        given = [flag for flag in ("--lava-url", "--lava-identity", "--lava-images-url")
                 if getattr(args, flag[2:].replace("-", "_"), None)]
        if given:
            raise UsageError(f"{given[0]} needs --engine lava")
        return None
    return target_from_args(engine, args.lava_url, args.lava_user, args.lava_identity,
                            args.lava_token_file, args.lava_images_url)


def _start_night(args: argparse.Namespace, matrix: Matrix, cells: list[Cell],
                 shard: str | None) -> _Night:
    if args.out is None:
        raise UsageError("lab needs --out DIR for the night's results")
    out = make_out_dir(args.out.resolve())
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("-j must be at least 1")
    if args.engine == "local" and importlib.util.find_spec("xdist") is None:
        raise UsageError("the lab runs cells with pytest-xdist, which is not installed: "
                         "pip install pytest-xdist (./bootstrap installs it)")
    plan = Plan(out=out, matrix=str(matrix.path.resolve()), matrix_name=matrix.name,
                matrix_sha256=matrix.sha256, cells=cells, shard=shard)
    # pytest's cache (for --lf) is shared by the nights next to this one, one per shard.
    cache_dir = ((args.history.resolve() if args.history else out.parent) /
                 ".oomrace-lab-cache" / (f"shard-{shard.replace('/', '-of-')}" if shard
                                         else "all"))
    plan_path = out / "plan.json"  # written once --compare is known to be good
    env = {**os.environ, PLAN_ENV: str(plan_path)}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return _Night(matrix, plan, plan_path, args, cache_dir, env)


def run_lab(args: argparse.Namespace) -> int:
    matrix = load_matrix(Path(args.target[0]))
    cells = list(matrix.cells)
    shard = None
    if args.shard:
        index, count = parse_shard(args.shard)
        cells = shard_cells(cells, index, count)
        shard = f"{index}/{count}"
    if args.list:
        for c in cells:
            print(c.id)
        return 0
    target = _lava_target(args)
    night = _start_night(args, matrix, cells, shard)
    previous = _previous(args, night.out)  # refuse a bad --compare before hours of work
    night.plan.write()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    selected = night.select()
    jobs = args.jobs or default_jobs(selected)
    print(f"[lab] {matrix.name}: {len(selected)} of {len(matrix.cells)} cells"
          + (f" (shard {shard})" if shard else "") + f", {jobs} at once; results in "
          f"{night.out}", flush=True)
    if selected and target is not None:
        night.run_lava(selected, jobs, target)
    elif selected:
        night.run(selected, jobs)
    # The night holds the cells run now and those an earlier run into this folder finished
    # (a --lf re-run keeps the rest); cells left out with -k are not part of it.
    chosen = {c.id for c in selected}
    planned = [c.id for c in cells
               if c.id in chosen or (cell_dir(night.out, c.id) / "cell.json").is_file()]
    summary = make_summary(read_records(night.out, planned), planned, name=matrix.name,
                           matrix=night.plan.matrix, matrix_sha256=matrix.sha256,
                           started_at=started_at, seconds=time.monotonic() - started,
                           jobs=jobs, shard=shard, interrupted=night.interrupted,
                           night=night.out.name)
    summary = finish_night(night.out, summary, args.history, previous)
    print_night(summary, night.out)
    code = exit_code(summary)
    return 128 + int(night.stopped_by) if code == 130 else code


def merge_lab(args: argparse.Namespace) -> int:
    if args.out is None:
        raise UsageError("lab merge needs --out DIR for the merged night")
    for flag, value in (("--shard", args.shard), ("-k", args.keyword), ("--lf", args.lf),
                        ("-j", args.jobs)):
        if value:
            raise UsageError(f"{flag} does not apply to lab merge")
    dirs = [Path(d) for d in args.target[1:]]
    out = args.out.resolve()
    previous = _previous(args, out)
    summary = finish_night(out, merge(dirs, out), args.history, previous)
    print_night(summary, out)
    return exit_code(summary)


def main(args: argparse.Namespace) -> int:
    """`oomrace lab MATRIX ...` or `oomrace lab merge DIR... --out DIR`."""
    if args.target[0] == "merge" and not Path("merge").is_file():
        return merge_lab(args)
    if len(args.target) != 1:
        raise UsageError("lab takes one matrix file (or: lab merge DIR... --out DIR)")
    return run_lab(args)
