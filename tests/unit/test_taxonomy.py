"""One crash taxonomy: the family table says what a report is (its type, whether it is
memory corruption, whether it stops a boot), and the parser, the verdict, bisect and the
boot detector all read it. A new family is one `Family` in kernel_log/families.py."""

from __future__ import annotations

import pytest

from harness import bisect, kernel_log, machine, verdict
from harness.kernel_log import families
from harness.kernel_log.spec import Family, Format, StackSpec, kind, rx

FAKE_LOG = """\
[   12.000000] oomrace-test: page owner mismatch at 0xffff000012345678
[   12.000001] CPU: 1 PID: 42 Comm: stress Not tainted 6.1.0 #1
[   12.000002] Call trace:
[   12.000003]  dump_backtrace+0x0/0x1e0
[   12.000004]  check_owner+0x10/0x40
[   12.000005]  free_pages_prepare+0x10/0x40
"""


def _fake_family(corruption: bool) -> Family:
    return Family(
        "oomrace-test: page owner mismatch",
        (
            Format(
                rx(r"oomrace-test: page owner mismatch"),
                "oomrace-test: page owner mismatch in {func}",
                stack=StackSpec(parts=(rx(r"Call trace:"), None), skip=("^check_",)),
            ),
        ),
        kinds=(kind(r"oomrace-test: page owner", "PAGE-OWNER", corruption=corruption),),
        boot_oops=r"oomrace-test: page owner mismatch",
    )


@pytest.mark.parametrize("corruption", [True, False])
def test_a_new_family_is_one_entry_of_the_table(
    monkeypatch: pytest.MonkeyPatch, corruption: bool
) -> None:
    monkeypatch.setattr(families, "FAMILIES", (*families.FAMILIES, _fake_family(corruption)))
    # The parser finds and titles it, typed as the family says.
    (report,) = kernel_log.parse(FAKE_LOG).reports
    assert report.title == "oomrace-test: page owner mismatch in free_pages_prepare"
    assert report.type == "PAGE-OWNER" and not report.garbled
    # The verdict and a bisect step sort it as the family says.
    expected = "corrupted" if corruption else "crashed"
    assert verdict.decide("clean", [report], None).verdict == expected
    assert verdict.is_corruption_title(report.title) is corruption
    sig = bisect.Signature(checker=False, titles=(report.title,))
    assert sig.matches(0, ["oomrace-test: page owner mismatch in other_function"])
    # The boot detector (what Machine.wait_ready expects) stops on it.
    assert machine.boot_oops_pattern is kernel_log.boot_oops_pattern
    found = machine.boot_oops_pattern().search(FAKE_LOG.encode())
    assert found is not None
    assert found.group(0) == b"oomrace-test: page owner mismatch at 0xffff000012345678"


def test_the_table_is_back_after_the_fake_family() -> None:
    assert kernel_log.classify_title("oomrace-test: page owner mismatch in f").type == "UNKNOWN"
    assert kernel_log.boot_oops_pattern().search(FAKE_LOG.encode()) is None


# (title, type, corruption) as the three taxonomies before the family table said them.
KNOWN = [
    ("pagealloc: memory corruption in get_page_from_freelist", "MEMORY-CORRUPTION", True),
    ("BUG: Bad page state in free_pages_prepare", "MEMORY-CORRUPTION", True),
    ("BUG: Bad page map in unmap_page_range", "MEMORY-CORRUPTION", True),
    ("BUG: Bad rss-counter state", "MEMORY-CORRUPTION", True),
    ("BUG: corrupted list in free_pcppages_bulk", "MEMORY-SAFETY-BUG", True),
    ("BUG: unable to handle kernel paging request in f", "MEMORY-SAFETY-BUG", False),
    ("BUG: unable to handle kernel NULL pointer dereference in f", "NULL-POINTER-DEREFERENCE",
     False),
    ("KASAN: use-after-free Write in f", "KASAN-USE-AFTER-FREE-WRITE", True),
    ("KASAN: use-after-free Read in f", "KASAN-USE-AFTER-FREE-READ", True),
    ("KASAN: slab-use-after-free Read in f", "KASAN-USE-AFTER-FREE-READ", False),
    ("KASAN: slab-out-of-bounds Write in f", "KASAN-WRITE", False),
    ("KASAN: null-ptr-deref Write in f", "KASAN-NULL-POINTER-DEREFERENCE-WRITE", False),
    ("KFENCE: use-after-free read in f", "KFENCE-USE-AFTER-FREE-READ", True),
    ("KFENCE: memory corruption in f", "KFENCE-MEMORY-CORRUPTION", True),
    ("KFENCE: out-of-bounds read in f", "KFENCE-READ", False),
    ("WARNING in __oom_reap_task_mm", "WARNING", False),
    ("WARNING: refcount bug in f", "REFCOUNT-WARNING", False),
    ("possible deadlock in f", "LOCKDEP", False),
    ("INFO: task hung in f", "HANG", False),
    ("BUG: soft lockup in f", "HANG", False),
    ("kernel BUG in f", "BUG", False),
    ("general protection fault in f", "DOS", False),
    ("kernel panic: Fatal exception", "DOS", False),
    ("BUG: Object already free", "DOS", False),
    ("UBSAN: array-index-out-of-bounds in f", "MEMORY-SAFETY-UBSAN", False),
    ("SYZFAIL: x", "SYZ-FAILURE", False),
    ("something else entirely", "UNKNOWN", False),
]


@pytest.mark.parametrize(("title", "type_", "corruption"), KNOWN)
def test_known_titles_keep_their_type_and_verdict(title: str, type_: str, corruption: bool) -> None:
    assert kernel_log.classify_title(title).type == type_
    assert verdict.is_corruption_title(title) is corruption


def test_boot_detector_matches_what_it_always_matched() -> None:
    pattern = kernel_log.boot_oops_pattern()
    for line in (b"Internal error: Oops: 96000004 [#1] SMP",
                 b"BUG: unable to handle page fault for address: 0000000000000008",
                 b"Unable to handle kernel NULL pointer dereference at virtual address 0",
                 b"general protection fault, probably for non-canonical address",
                 b"kernel BUG at mm/oom_kill.c:123!"):
        found = pattern.search(b"[    1.0] " + line + b"\r\n[    1.1] next")
        assert found is not None and found.group(0) == line
    assert pattern.search(b"WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1/0x2") is None
