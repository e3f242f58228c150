"""Run the mm selftests in a booted guest and read their KTAP into one result per test.

kselftest's runner prints TAP (a plan, then `ok N selftests: vm: NAME` or `not ok ...`, a
skip as `# SKIP`, a timeout as `# TIMEOUT`); a test that needs something the guest lacks
says so itself (its exit code 4, KSFT_SKIP), we never skip one. The output goes to the
SSH session and, through `tee`, to the serial console: when the guest hangs or dies
mid-run the session is lost, and the console log still holds what was printed, which the
KTAP parser reads as tests that crashed or never began.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import atomicio, kernel_log, ktap, schema
from ..errors import GuestCommandError, HarnessError
from ..guest import Guest
from ..kernel.build import recipes
from ..kernel.build.source import Source, resolve_source
from ..kernel.image import KernelImage
from .build import SelftestBuild
from .layer import BEGIN_MARKER, END_MARKER, GUEST_ROOT
from .suite import SUITE_NAME, Selftest

log = logging.getLogger(__name__)

PER_TEST_TIMEOUT = 180.0
"""Seconds each test may take: the suite's own 45 s is for real hardware, not TCG."""
GUEST_MEMORY_MB = 4096
"""mremap_test maps 2 GB regions (untouched but for a few MB): more than the overcommit
heuristic allows a 2 GB guest with its huge pages reserved (measured: ENOMEM)."""
RESULT_FILE = "kselftest.json"
KTAP_FILE = "kselftest.ktap"


def selftest_source(kernel: KernelImage) -> Source:
    """The tree the selftests of `kernel` are built from: its recipe's source, Debian's
    linux-source for Debian's kernel and for an image given by path (the v6.1 recipe's)."""
    recipe = recipes.load_recipe(kernel.source.recipe or recipes.DEFAULT_CONFIG_RECIPE)
    return resolve_source(recipe.source, recipe.sha256, recipe.ref)


@dataclass(frozen=True)
class SelftestResult:
    """One selftest's outcome as the runner reported it (or as the parser found it cut)."""

    name: str
    result: ktap.Result
    directive: str | None = None
    reason: str = ""
    output: tuple[str, ...] = ()  # the test's own lines (the runner's `# ` prefix removed)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "result": self.result.value, "directive": self.directive,
                "reason": self.reason, "output": list(self.output)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelftestResult:
        return cls(name=str(data["name"]), result=ktap.Result(data["result"]),
                   directive=data.get("directive"), reason=str(data.get("reason", "")),
                   output=tuple(data.get("output", ())))


@dataclass(frozen=True)
class SuiteRun:
    """A suite's run in one guest: a result per planned test, and how the run ended."""

    arch: str
    kernel: str
    suite: str
    source: str
    planned: tuple[str, ...]
    results: tuple[SelftestResult, ...]
    left_out: dict[str, str] = field(default_factory=dict)  # not built: why
    finished: bool = True  # the runner reached its end marker
    problem: str | None = None  # why it did not (a timeout, a lost guest)
    seconds: float = 0.0
    ktap_text: str = ""  # what the runner printed, as read
    reports: tuple[str, ...] = ()  # titles of kernel crash reports in the console log

    def result(self, name: str) -> SelftestResult:
        found = [r for r in self.results if r.name == name]
        if not found:
            raise KeyError(f"{name} was not run; planned: {', '.join(self.planned)}")
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return schema.versioned({
            "arch": self.arch, "kernel": self.kernel, "suite": self.suite,
            "source": self.source, "planned": list(self.planned),
            "results": [r.to_json() for r in self.results], "left_out": self.left_out,
            "finished": self.finished, "problem": self.problem, "seconds": self.seconds,
            "ktap": self.ktap_text, "reports": list(self.reports)})

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = RESULT_FILE) -> SuiteRun:
        schema.check_version(data, where)
        return cls(arch=data["arch"], kernel=data["kernel"], suite=data["suite"],
                   source=data["source"], planned=tuple(data["planned"]),
                   results=tuple(SelftestResult.from_json(r) for r in data["results"]),
                   left_out=dict(data.get("left_out", {})), finished=bool(data["finished"]),
                   problem=data.get("problem"), seconds=float(data.get("seconds", 0.0)),
                   ktap_text=str(data.get("ktap", "")),
                   reports=tuple(data.get("reports", ())))


def guest_command(built: SelftestBuild, tests: list[Selftest], per_test: float) -> str:
    """The shell command that runs `tests` through kselftest's runner in the guest."""
    env = [f"{t.args_variable}={shlex.quote(' '.join(t.args))}" for t in tests if t.args]
    argv = ["sh", f"/{GUEST_ROOT}/run.sh", built.suite_dir, str(int(per_test)),
            *(t.name for t in tests)]
    return " ".join([*env, shlex.join(argv)]) + " 2>&1 | tee /dev/console"


def ktap_section(text: str) -> str:
    """What the runner printed between our markers (to the end when the end never came)."""
    start = text.rfind(BEGIN_MARKER)
    if start < 0:
        return ""
    section = text[text.index("\n", start) + 1 if "\n" in text[start:] else len(text):]
    end = section.find(END_MARKER)
    return section if end < 0 else section[:end]


def _own_output(test: ktap.KtapTest) -> tuple[str, ...]:
    """The test's own lines: its diagnostics, then its own subtests (kselftest.h's TAP,
    which the parser nests under the runner's result line), one line each."""
    subtests = tuple(
        f"{'ok' if sub.ok else 'not ok'} {sub.number} {sub.name}"
        + (f" # {sub.directive or ''} {sub.reason}".rstrip() if sub.directive or sub.reason
           else "")
        for sub in test.subtests)
    return (*test.diagnostics, *subtests)


def results_of(document: ktap.KtapDocument, tests: list[Selftest]) -> list[SelftestResult]:
    """One result per planned test, matched by number (the runner numbers them in the
    order given): a test the document lacks altogether is missing."""
    by_number = {t.number: t for t in document.tests}
    found = []
    for number, planned in enumerate(tests, start=1):
        test = by_number.get(number)
        if test is None:
            found.append(SelftestResult(planned.name, ktap.Result.MISSING))
            continue
        found.append(SelftestResult(planned.name, test.result, test.directive, test.reason,
                                    _own_output(test)))
    return found


def run_suite(guest: Guest, built: SelftestBuild, tests: list[Selftest],
              per_test: float = PER_TEST_TIMEOUT) -> SuiteRun:
    """Run `tests` in `guest` (booted with the selftests layer); never raises for a guest
    that hangs or dies: the tests it did not finish are crashed or missing."""
    command = guest_command(built, tests, per_test)
    budget = len(tests) * (per_test + 15) + 60  # every test at its limit, plus the runner
    started = time.monotonic()
    problem = None
    try:
        done = guest.run(command, timeout=budget)
        text = done.stdout
        if END_MARKER not in text:  # the session ended early: the guest died under it
            problem = f"the runner stopped before its end (exit code {done.exit_code})"
    except (GuestCommandError, HarnessError) as e:
        problem = str(e).splitlines()[0]
        log.warning("selftests on %s stopped: %s", guest.arch.name, problem)
        time.sleep(2)  # the console's last bytes
        text = guest.artifacts.console_log.read_text(errors="replace")
    seconds = time.monotonic() - started
    section = ktap_section(text)
    finished = problem is None and END_MARKER in text
    document = ktap.parse(section)
    console = guest.artifacts.console_log.read_text(errors="replace")
    reports = tuple(r.title for r in kernel_log.parse(console).reports)
    return SuiteRun(arch=guest.arch.name, kernel=guest.kernel.description, suite=SUITE_NAME,
                    source=built.source, planned=tuple(t.name for t in tests),
                    results=tuple(results_of(document, tests)), left_out=built.left_out,
                    finished=finished, problem=problem, seconds=round(seconds, 1),
                    ktap_text=section, reports=reports)


def save(run: SuiteRun, folder: Path) -> Path:
    """Write kselftest.json and the runner's KTAP (kselftest.ktap) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    atomicio.write_text(folder / KTAP_FILE, run.ktap_text)
    path = folder / RESULT_FILE
    atomicio.write_json(path, run.to_json())
    return path
