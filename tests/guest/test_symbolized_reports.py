"""A report from one of our builds gets file:line: build the LKDTM recipe (its fragments
include debug-info.config), boot it once, provoke a WARNING the way `oomrace
record-lkdtm` does, and look its frames up in the build's vmlinux as a run does."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kernel_log, lkdtm, symbolize
from harness.arches import get_arch
from harness.guest import Guest
from harness.kernel import resolve
from harness.kernel.build import builder, recipes
from harness.kernel.build.source import resolve_source
from harness.kernel_log.symbols import location_of
from harness.machine import MachineOptions

from ..conftest import qemu_processes_with

# One arch is enough for the path (the LKDTM build took 558 s cold on the 2-core machine,
# then a boot and a WARNING about 12 s).
ARCH = "aarch64"

pytestmark = [pytest.mark.guest, pytest.mark.kernel_build, pytest.mark.slow,
              pytest.mark.timeout(3600)]


def test_a_report_of_our_build_names_file_and_line(tmp_path: Path) -> None:
    arch = get_arch(ARCH)
    built = builder.build(lkdtm.RECIPE, ARCH, progress=True)
    assert built.vmlinux is not None and built.has_option("DEBUG_INFO")
    image = resolve.from_build(built)
    assert image.vmlinux == built.vmlinux
    with Guest(arch, image, tmp_path, MachineOptions(cpus=2)) as guest:
        text = lkdtm.provoke(guest, lkdtm.crash_type("WARNING"))
    assert qemu_processes_with(str(tmp_path)) == []

    reports = kernel_log.parse(text).reports
    outcome = symbolize.symbolize_reports(reports, image.vmlinux, arch)
    report = outcome.reports[0]
    assert report.title == "WARNING in lkdtm_WARNING", text
    where = location_of(report.symbolized, report.guilty_function)
    assert where is not None, outcome.note
    assert where.file == "drivers/misc/lkdtm/bugs.c", report.symbolized
    # The kernel says where itself: `WARNING: CPU: 1 PID: 55 at drivers/...bugs.c:85 ...`.
    assert f" at {where} " in report.lines[0], (report.lines[0], where)
    # The line is in the kernel the build compiled, and it is the WARN_ON itself.
    recipe = recipes.load_recipe(lkdtm.RECIPE)
    tree = resolve_source(recipe.source, recipe.sha256, recipe.ref).tree
    source = (tree / where.file).read_text().splitlines()
    assert 0 < where.line <= len(source)
    assert "WARN_ON" in source[where.line - 1], source[where.line - 1]
    # The callers are located too, every path relative to the tree.
    located = [f for f in report.symbolized if f.reliable]
    assert len(located) >= 4, report.symbolized
    assert all((tree / f.location.file).is_file() for f in located), located
