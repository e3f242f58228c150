"""`oomrace lab --engine lava`: each cell of the night as a LAVA job, on a LAVA server
(submitted, followed and fetched with lavacli) or on this machine's dispatcher alone
(`--engine lava-run`, what the CI test uses); each finished job's log into the same
cells/<id>/ folder and record a local night writes.

The token never appears on a command line or in a log: lavacli reads it from a config
file of its own (mode 0600, in a private temporary folder) or from the user's identity.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from .. import rootfs, signals
from ..arches import get_arch
from ..errors import HarnessError, UsageError
from ..kernel.image import ResolvedKernel
from ..proc import run
from ..run import RunResult, Seen, finish
from .cells import (
    Plan,
    build_key,
    cell_spec,
    record_from_result,
    repro_record,
    write_cell_ktap,
)
from .lava_job import JobImages, device_dictionary, image_url, job_definition, stress_workload
from .lava_log import LavaLog, parse_log, workload_result
from .matrix import Cell
from .record import CellRecord, cell_dir, outcome

ENGINES = ("local", "lava", "lava-run")
TOKEN_ENV = "OOMRACE_LAVA_TOKEN"
LAVA_TIMEOUT_MARGIN_S = 600  # queueing on a busy lab, on top of the job's own timeout
POLL_S = 10.0


@dataclass(frozen=True)
class LavaTarget:
    """Where the jobs run: a server (url, user, token or a lavacli identity) or, with
    `url` None, this machine's lava-run."""

    url: str | None = None
    user: str | None = None
    token: str | None = None
    identity: str | None = None
    images_url: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"LavaTarget(url={self.url!r}, user={self.user!r}, identity={self.identity!r})"


def target_from_args(engine: str, url: str | None, user: str | None, identity: str | None,
                     token_file: Path | None, images_url: str | None) -> LavaTarget:
    """The LAVA target of the command line; a missing or contradictory part is a
    one-line UsageError naming the option."""
    if engine == "lava-run":
        if url or identity:
            raise UsageError("--engine lava-run runs jobs on this machine: drop --lava-url "
                             "and --lava-identity, or use --engine lava")
        return LavaTarget(images_url=images_url)
    if bool(url) == bool(identity):
        raise UsageError("--engine lava needs the server: --lava-url URL (with --lava-user "
                         f"and the token in ${TOKEN_ENV} or --lava-token-file) or "
                         "--lava-identity NAME (a lavacli identity)")
    token = None
    if url:
        if not url.startswith(("http://", "https://")) or "@" in url:
            raise UsageError(f"--lava-url must be http(s)://host[/RPC2] without a user or "
                             f"token in it, not {url.split('@')[-1]!r}")
        if token_file is not None:
            try:
                token = token_file.read_text().strip()
            except OSError as e:
                raise UsageError(f"--lava-token-file {token_file}: {e.strerror}; give a "
                                 "readable file holding the token") from None
        else:
            token = os.environ.get(TOKEN_ENV, "").strip() or None
        if not user or not token:
            raise UsageError(f"--lava-url needs --lava-user and a token (${TOKEN_ENV} or "
                             "--lava-token-file FILE)")
        if not url.rstrip("/").endswith("/RPC2"):
            url = url.rstrip("/") + "/RPC2"
    return LavaTarget(url=url, user=user, token=token, identity=identity,
                      images_url=images_url)


# --- where jobs run -------------------------------------------------------------------


class LavaRun:
    """The dispatcher alone: `lava-run` with a qemu device dictionary made from the job's
    context (lava_job.device_dictionary); its stdout is the job's log."""

    _ids = itertools.count(1)

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def run_job(self, job: dict[str, object], job_file: Path, timeout: float) -> list[str]:
        number = f"{os.getpid()}{next(self._ids):03d}"  # the dispatcher's tmp folder name
        device = job_file.with_name("lava-device.yaml")
        device.write_text(json.dumps(device_dictionary(job["context"]),  # type: ignore[arg-type]
                                     indent=1) + "\n")
        output = self.workdir / f"lava-run-{number}"
        done = run(["lava-run", "--job-id", number, "--output-dir", str(output),
                    "--device", str(device), str(job_file)],
                   timeout=timeout, check=False, package="lava-dispatcher")
        shutil.rmtree(output, ignore_errors=True)
        return done.stdout.splitlines() + done.stderr.splitlines()


class LavaServer:
    """A LAVA server through lavacli: submit, wait for the end, fetch the raw log."""

    def __init__(self, target: LavaTarget, config_dir: Path) -> None:
        self.target = target
        self.env = dict(os.environ)
        self.identity = target.identity or "oomrace"
        if target.url is not None:
            config = config_dir / "lavacli.yaml"
            config.touch(mode=0o600)
            config.write_text(json.dumps({"oomrace": {
                "uri": target.url, "username": target.user, "token": target.token}}) + "\n")
            self.env["XDG_CONFIG_HOME"] = str(config_dir)

    def _lavacli(self, *argv: str, timeout: float = 120.0) -> str:
        done = run(["lavacli", "-i", self.identity, *argv], timeout=timeout, check=False,
                   env=self.env, package="lavacli (pip install 'oomrace[lava]')")
        if done.returncode != 0:
            raise HarnessError(f"lavacli {' '.join(argv)} failed (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return done.stdout

    def run_job(self, job: dict[str, object], job_file: Path, timeout: float) -> list[str]:
        job_id = self._lavacli("jobs", "submit", str(job_file)).split()[-1]
        print(f"[lab] {job_file.parent.name}: LAVA job {job_id}", flush=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._lavacli("jobs", "show", job_id, "--yaml")
            if "state: Finished" in state:
                return self._lavacli("jobs", "logs", job_id, "--raw",
                                     timeout=600.0).splitlines()
            time.sleep(POLL_S)
        self._lavacli("jobs", "cancel", job_id)
        raise HarnessError(f"LAVA job {job_id} did not finish within {timeout:.0f} s "
                           "(cancelled)")


@contextmanager
def _runner(target: LavaTarget, out: Path) -> Iterator[LavaRun | LavaServer]:
    with tempfile.TemporaryDirectory(prefix="oomrace-lava-") as private:
        os.chmod(private, 0o700)
        if target.url is None and target.identity is None:
            yield LavaRun(Path(private))
        else:
            yield LavaServer(target, Path(private))


# --- a cell ---------------------------------------------------------------------------


def _images(cell: Cell, kernel: ResolvedKernel, out: Path, base_url: str | None) -> JobImages:
    """The kernel and initramfs a cell's job deploys; copied into the night's folder
    (lava/images/) when a remote worker fetches them from --lava-images-url."""
    folder = out / "lava" / "images" / build_key(cell.arch, cell.kernel).replace(":", "-")
    folder.mkdir(parents=True, exist_ok=True)
    initrd = rootfs.initrd_for(rootfs.build(get_arch(cell.arch)), kernel.image.modules_cpio,
                               folder)
    image = kernel.image.path
    if base_url is not None:
        for source in (image, initrd):
            if source.parent != folder and not (folder / source.name).exists():
                shutil.copy2(source, folder / source.name)
        image, initrd = folder / image.name, folder / initrd.name
    return JobImages(image_url(image, base_url, out), image_url(initrd, base_url, out))


def run_lava_cell(cell: Cell, plan: Plan, runner: LavaRun | LavaServer,
                  target: LavaTarget) -> CellRecord:
    """One cell as a LAVA job into cells/<id>/ (lava-job.yaml, lava-log.yaml, console.log,
    result.json, cell.json); never raises for a failed job."""
    directory = cell_dir(plan.out, cell.id)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    started = time.monotonic()
    key = build_key(cell.arch, cell.kernel)
    kernel, failure = plan.kernels.get(key), plan.build_errors.get(key)
    record = CellRecord(cell=cell)
    result: RunResult | None = None
    if failure is not None or kernel is None:
        text = f"build failed: {failure or 'kernel not resolved'}"
        record = replace(record, reason=text, error=text)
    else:
        result = _run_job(cell, kernel, plan, runner, target, directory)
        record = record_from_result(record, result)
    with signals.deferred():
        record = replace(record, seconds=round(time.monotonic() - started, 3),
                         outcome=outcome(cell.expected, record.verdict),
                         repro=_repro(cell, kernel, failure, directory))
        record.write(plan.out)
        write_cell_ktap(directory, record, result)
    return record


def _repro(cell: Cell, kernel: ResolvedKernel | None, failure: str | None,
           directory: Path) -> dict[str, object]:
    repro = repro_record(cell, (), kernel, failure)
    repro["lava_job"] = str(directory / "lava-job.yaml")
    return repro


def _run_job(cell: Cell, kernel: ResolvedKernel, plan: Plan, runner: LavaRun | LavaServer,
             target: LavaTarget, directory: Path) -> RunResult:
    spec = cell_spec(cell, kernel)
    seen = Seen(time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                image=kernel.image, accel=cell.accel)
    log = LavaLog()
    try:
        spec.checked()
        stress_workload(cell)
        job = job_definition(cell, kernel.image, _images(cell, kernel, plan.out,
                                                         target.images_url),
                             night=plan.out.name)
        job_file = directory / "lava-job.yaml"
        job_file.write_text(json.dumps(job, indent=1) + "\n")  # YAML in its JSON form
        timeout = _job_seconds(job) + LAVA_TIMEOUT_MARGIN_S
        lines = runner.run_job(job, job_file, timeout)
        (directory / "lava-log.yaml").write_text("".join(line + "\n" for line in lines))
        log = parse_log(lines)
        seen.workload = workload_result(log, cell.scenario)
        seen.boot_seconds = log.boot_seconds
        if seen.workload.stress is not None and seen.workload.stress.error:
            seen.error = seen.workload.stress.error
    except HarnessError as e:
        seen.error = str(e)
    (directory / "console.log").write_text(log.console_text)
    return finish(spec, seen, directory)


def _job_seconds(job: dict[str, object]) -> float:
    timeouts = job["timeouts"]
    assert isinstance(timeouts, dict)
    return float(timeouts["job"]["minutes"]) * 60


def run_cells(plan: Plan, cells: Sequence[Cell], jobs: int, target: LavaTarget,
              on_done: Callable[[CellRecord], None] | None = None) -> list[CellRecord]:
    """Every cell as a LAVA job, `jobs` at once; each record is written as its job ends."""
    records: list[CellRecord] = []
    lock = threading.Lock()

    def one(cell: Cell) -> None:
        record = run_lava_cell(cell, plan, runner, target)
        with lock:
            records.append(record)
            if on_done is not None:
                on_done(record)

    with _runner(target, plan.out) as runner, ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, c) for c in cells]:
            future.result()
    return records
