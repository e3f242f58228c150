"""Console logs recorded from this project's own guests (see harness/lkdtm.py and
benchmarks/bench_race.py): the parser must title them as the kernel meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kernel_log
from harness.lkdtm import CRASH_TYPES, CrashType

DATA = Path(__file__).resolve().parent.parent / "data"
ARCHES = ("x86_64", "aarch64")


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("crash", CRASH_TYPES, ids=lambda c: c.name)
def test_lkdtm_crash_titles(arch: str, crash: CrashType) -> None:
    log = DATA / "lkdtm" / arch / f"{crash.name}.log"
    assert log.is_file(), f"missing {log}: record it with python -m harness.lkdtm --arch {arch}"
    analysis = kernel_log.parse(log.read_text(errors="replace"))
    assert analysis.reports, f"no report found in {log}"
    first = analysis.reports[0]
    assert first.title == crash.title
    assert first.arch in (None, arch)
    # Our builds have reliable stacks on every arch (x86_64: the frame-pointer unwinder),
    # so a title names a function, never "corrupted".
    assert not first.garbled and not first.title.endswith(" in corrupted")


def test_seed_bug_page_poisoning_reports() -> None:
    log = DATA / "kernel_logs" / "aarch64-v6.1-reaper-fullmm-mrelease.log"
    analysis = kernel_log.parse(log.read_text())
    titles = [r.title for r in analysis.reports]
    assert titles[:4] == ["pagealloc: memory corruption in post_alloc_hook"] * 4
    # The log was cut in the middle of the fifth report.
    assert titles[4] == "pagealloc: memory corruption in corrupted"
    assert analysis.reports[0].arch == "aarch64"
    assert sum(e.kind == "page_poison_corruption" for e in analysis.events) == 5
