"""The kernel's mm selftests we run: which programs are tests, with what arguments, and
which few make the default (CI) tier.

The arguments are the first ones `run_vmtests.sh` (6.1) gives each program; kselftest's
runner passes them from `KSELFTEST_<NAME>_ARGS`. A program the tree builds but that is no
test on its own is named in NOT_TESTS with the reason, and never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUITE_DIRS = ("mm", "vm")
"""`tools/testing/selftests/<dir>`: `vm` up to 6.2, `mm` since; the first found is used."""

SUITE_NAME = "vm"
"""What the lab and pytest call the suite, whatever the tree calls its folder."""
LAB_SCENARIO = f"kselftest:{SUITE_NAME}"
"""The lab's scenario that runs the whole suite in one guest (harness/selftests/cell.py)."""
CELL_BUDGET_S = 2400.0
"""Seconds a lab cell's suite may take after boot: the whole suite under TCG (README) with
room for a few tests that run to their limit."""


@dataclass(frozen=True)
class Selftest:
    name: str  # the program, as the tree's Makefile names it
    args: tuple[str, ...] = ()
    default_tier: bool = False  # run in CI's default tier (both arches, a few minutes)
    # Why it fails in our guest although the kernel is fine: a precondition of the test
    # that our guest does not meet, or a mismatch of test and kernel that we checked in the
    # source (pytest then marks a failure xfail, never a pass); on `known_arches` only,
    # when given.
    known_failure: str = ""
    known_arches: tuple[str, ...] = ()

    def known_failure_on(self, arch: str) -> str:
        """Why this test is known to fail on `arch`, or ""."""
        return self.known_failure if not self.known_arches or arch in self.known_arches \
            else ""

    @property
    def args_variable(self) -> str:
        """The environment variable kselftest's runner reads this program's arguments from
        (its name upper-cased, other characters made `_`, as runner.sh does)."""
        return "KSELFTEST_" + re.sub(r"[^A-Z0-9_]", "_", self.name.upper()) + "_ARGS"


# Default tier: quick under TCG and meaningful on both arches, mrelease_test first (the
# syscall our race scenario uses). The rest run under the `full` marker.
SELFTESTS: tuple[Selftest, ...] = (
    Selftest("mrelease_test", default_tier=True),
    Selftest("map_fixed_noreplace", default_tier=True),
    Selftest("mremap_dontunmap", default_tier=True),
    Selftest("madv_populate", default_tier=True),
    Selftest("mlock2-tests", default_tier=True),
    Selftest("map_populate"),
    Selftest("soft-dirty"),
    Selftest("mremap_test"),
    Selftest("compaction_test"),
    Selftest("userfaultfd", ("anon", "20", "16"),
             known_failure="6.1's test asks UFFDIO_API for every feature of its headers, "
             "uffd-wp included; 6.1.192 refuses a feature the arch lacks with EINVAL "
             "(fs/userfaultfd.c), and arm64 has no uffd-wp",
             known_arches=("aarch64",)),
    Selftest("gup_test", ("-u",)),
    Selftest("on-fault-limit", known_failure="run_vmtests.sh runs it as user nobody; as "
             "root (CAP_IPC_LOCK) the locked mmap it expects to fail succeeds"),
    Selftest("thuge-gen"),
    Selftest("hugepage-mmap"),
    Selftest("hugepage-shm"),
    Selftest("map_hugetlb"),
    # hugetlb-madvise counts free huge pages exactly: before hugepage-mremap, whose file
    # keeps its pages (run_vmtests.sh deletes it in between, the runner cannot).
    Selftest("hugetlb-madvise", ("huge/madvise-test",),
             known_failure="6.1's test expects MADV_DONTNEED to round a hugetlb range's end "
             "up; 6.1.192 rounds it down (mm/madvise.c, the data-loss fix from 6.2), so "
             "the pages it counts stay in use"),
    Selftest("hugepage-mremap", ("huge/huge_mremap",)),
    Selftest("hugepage-vmemmap"),
    Selftest("virtual_address_range"),
    Selftest("va_128TBswitch"),
    Selftest("memfd_secret"),
    Selftest("mlock-random-test"),
    Selftest("ksm_tests", ("-M", "-p", "10")),
    Selftest("migration"),
    Selftest("protection_keys_64"),
)

NOT_TESTS: dict[str, str] = {
    # 6.1's run_vmtests.sh builds but never runs these two; run alone in our guest on
    # Debian's kernel they fail (collapse_compound_extreme; "No THP is allocated").
    "khugepaged": "6.1's run_vmtests.sh does not run it",
    "split_huge_page_test": "6.1's run_vmtests.sh does not run it",
    "transhuge-stress": "a stress loop that runs until it is killed, not a test",
    "write_to_hugetlbfs": "a helper of hugetlb_reparenting_test.sh, not a test",
    "hmm-tests": "run by test_hmm.sh after it loads the test_hmm module",
}


def selftest(name: str) -> Selftest:
    """The Selftest called `name` (KeyError for a program that is not in the table)."""
    return {t.name: t for t in SELFTESTS}[name]


def planned(built: list[str], default_tier_only: bool) -> list[Selftest]:
    """The tests of the table that were built, in table order; the default tier's only
    when asked."""
    have = set(built)
    return [t for t in SELFTESTS
            if t.name in have and (t.default_tier or not default_tier_only)]
