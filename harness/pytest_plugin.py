"""pytest plugin (entry point `oomrace`): options, the `guest` fixture per arch, markers,
a timeout default for guest tests, and artifact paths in failure reports and JUnit."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from . import kernel_log, symbolize
from .accel import ACCELS
from .arches import Arch, arch_help, get_arch, parse_arch_list
from .errors import HarnessError
from .guest import Guest
from .kernel import resolve
from .kernel.build import recipes
from .kernel.image import KernelImage
from .kernel_log.symbols import location_of
from .machine import machine_options

GUEST_FIXTURES = {"guest", "guest_factory", "guest_arch"}
GUEST_TEST_TIMEOUT = 600  # seconds; a test can ask for its own with @pytest.mark.timeout
GUESTS_KEY = pytest.StashKey[list[Guest]]()


# Our options, as --oomrace-NAME (dest oomrace_NAME): prefixed, so that another plugin's
# --arch or --kernel never clashes with ours.
OPTIONS: dict[str, dict[str, Any]] = {
    "arch": {"action": "append", "default": None,
             "help": f"guest arch for guest tests: {arch_help()} (repeatable; default all)"},
    "kernel": {"default": "debian",
               "help": "kernel for guest tests: debian, a recipe name, or an image path"},
    "artifacts": {"default": None,
                  "help": "folder for guest console logs and results "
                          "(default oomrace-artifacts/pytest-<time>)"},
    "accel": {"default": "tcg", "choices": ACCELS,
              "help": "QEMU accelerator (default tcg)"},
    "append": {"action": "append", "default": None,
               "help": "extra kernel command-line argument for every guest (repeatable)"},
    "cpu": {"default": None,
            "help": "QEMU CPU model under TCG (default: by arch and kernel version)"},
    "kconfig": {"default": None, "metavar": "FILE",
                "help": "a full .config as the base of the --oomrace-kernel recipe's build"},
    "kconfig-add": {"action": "append", "default": [], "metavar": "CONFIG_X=y",
                    "help": "an option for the --oomrace-kernel recipe's build (repeatable)"},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oomrace", "oomrace guests")
    for name, spec in OPTIONS.items():
        group.addoption(f"--oomrace-{name}", dest=f"oomrace_{name.replace('-', '_')}", **spec)


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "guest: boots a real QEMU guest",
        "kernel_build: builds a kernel from source",
        "slow: takes minutes",
        "kernel_reports(*patterns): kernel crash reports whose titles match one of these "
        "regexes are expected; any other report fails the test",
    ):
        config.addinivalue_line("markers", line)
    try:
        config.stash[_ARCHES_KEY] = parse_arch_list(config.getoption("oomrace_arch") or ["all"])
        recipes.kconfig_change(config.getoption("oomrace_kconfig"),
                              config.getoption("oomrace_kconfig_add"))  # refused at once
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from e
    artifacts = config.getoption("oomrace_artifacts")
    if artifacts is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        artifacts = Path("oomrace-artifacts") / f"pytest-{stamp}"
    config.stash[_ARTIFACTS_KEY] = Path(artifacts).resolve()


_ARCHES_KEY = pytest.StashKey[list[Arch]]()
_ARTIFACTS_KEY = pytest.StashKey[Path]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "guest_arch" in metafunc.fixturenames:
        arches = metafunc.config.stash[_ARCHES_KEY]
        metafunc.parametrize("guest_arch", [a.name for a in arches], scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if GUEST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.guest)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(GUEST_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def oomrace_artifacts(request: pytest.FixtureRequest) -> Path:
    path: Path = request.config.stash[_ARTIFACTS_KEY]
    path.mkdir(parents=True, exist_ok=True)
    return path


_KERNELS: dict[tuple[str, str], KernelImage] = {}


@pytest.fixture(scope="session")
def kernel_for(pytestconfig: pytest.Config) -> Callable[[str, str], KernelImage]:
    """kernel_for(spec, arch) -> KernelImage, resolved (fetched or built) once per session;
    --oomrace-kconfig/--oomrace-kconfig-add change the --oomrace-kernel recipe's build."""
    default = pytestconfig.getoption("oomrace_kernel")
    try:
        change = recipes.kconfig_change(pytestconfig.getoption("oomrace_kconfig"),
                                       pytestconfig.getoption("oomrace_kconfig_add"))
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from e

    def resolved(spec: str, arch: str) -> KernelImage:
        key = (spec, arch)
        if key not in _KERNELS:
            _KERNELS[key] = resolve.resolve(spec, get_arch(arch),
                                            change if spec == default else None)
        return _KERNELS[key]

    return resolved


def _test_dir(item: pytest.Item, root: Path) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")
    return root / name[:150]


@pytest.fixture
def guest_factory(
    request: pytest.FixtureRequest, oomrace_artifacts: Path,
    kernel_for: Callable[[str, str], KernelImage],
) -> Iterator[Callable[..., Guest]]:
    """guest_factory(arch, kernel=None, **MachineOptions fields) boots a guest that is shut
    down when the test ends; the test's artifacts folder holds its logs."""
    booted: list[Guest] = []
    request.node.stash[GUESTS_KEY] = booted
    base = _test_dir(request.node, oomrace_artifacts)
    default_kernel = request.config.getoption("oomrace_kernel")
    accel = request.config.getoption("oomrace_accel")
    append = tuple(request.config.getoption("oomrace_append") or ())
    cpu = request.config.getoption("oomrace_cpu")

    def boot(arch: str, kernel: str | None = None, **options: object) -> Guest:
        image = kernel_for(kernel or default_kernel, arch)
        options.setdefault("accel", accel)
        # --oomrace-append comes after the test's own arguments; --oomrace-cpu unless the
        # test names a model itself
        options["cmdline_extra"] = (*options.get("cmdline_extra", ()), *append)  # type: ignore[misc]
        if cpu is not None:
            options.setdefault("cpu", cpu)
        workdir = base / f"{arch}-{len(booted)}"
        guest = Guest(get_arch(arch), image, workdir, machine_options(**options))  # type: ignore[arg-type]
        booted.append(guest)
        request.node.user_properties.append((f"console_log[{len(booted) - 1}]",
                                             str(guest.artifacts.console_log)))
        request.node.user_properties.append((f"dmesg[{len(booted) - 1}]",
                                             str(guest.artifacts.dmesg)))
        return guest.__enter__()

    try:
        yield boot
    finally:
        for guest in reversed(booted):
            guest.close()


@pytest.fixture
def guest(guest_arch: str, guest_factory: Callable[..., Guest]) -> Guest:
    """A booted guest of each arch chosen with --oomrace-arch, with the kernel chosen by
    --oomrace-kernel."""
    return guest_factory(guest_arch)


def unexpected_reports(item: pytest.Item, guests: list[Guest]) -> list[str]:
    """Titles of kernel reports in the guests' console logs that the test did not expect."""
    # The titles are the guest's: the marker's patterns get parse-log --allow's time bound.
    gate = kernel_log.Gate(tuple(kernel_log.gate.compile_pattern(p, "kernel_reports")
                                 for m in item.iter_markers("kernel_reports") for p in m.args))
    slow: set[str] = set()
    titles = []
    for g in guests:
        reports = [r for r in g.console_reader.reports() if gate.judge(r, slow).gating]
        # With the kernel's vmlinux (our builds) each title says where its function is.
        located = symbolize.symbolize_reports(reports, g.kernel.vmlinux, g.arch).reports
        for report in located:
            where = location_of(report.symbolized, report.guilty_function)
            titles.append(f"{g.arch.name}: {report.title}" + (f" ({where})" if where else ""))
    return titles


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    guests = item.stash.get(GUESTS_KEY, [])
    if report.when == "call" and guests:
        unexpected = unexpected_reports(item, guests)
        if unexpected:
            message = "unexpected kernel report(s):\n  " + "\n  ".join(unexpected)
            if report.passed:
                report.outcome = "failed"
                report.longrepr = message
            else:
                report.sections.append(("oomrace kernel reports", message))
    if report.failed and guests:
        lines = [f"{g.arch.name}: console log {g.artifacts.console_log}\n"
                 f"{' ' * len(g.arch.name)}  dmesg       {g.artifacts.dmesg}" for g in guests]
        report.sections.append(("oomrace guest artifacts", "\n".join(lines)))
