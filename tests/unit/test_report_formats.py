"""The newer report formats, the informational-WARNING rule and the guilty-frame skip
list, each on a small synthetic log written for the test (not copied from any corpus)."""

# ruff: noqa: E501  (console lines are as wide as the kernel prints them)

from __future__ import annotations

import re

import pytest

from harness.kernel_log import parse
from harness.kernel_log.frames import SKIP_RE, guilty_file
from harness.kernel_log.skips import GENERIC_FRAMES, GUILTY_FILE_IGNORES


def _titles(log: str) -> list[str]:
    return [r.title for r in parse(log).reports]


WARN_6X = """\
[   12.000000][ T5001] ------------[ cut here ]------------
[   12.000001][ T5001] WARNING: fs/ext4/inode.c:5123 at ext4_evict_inode+0x1a2/0x3c0, CPU#1: a.out/5001
[   12.000002][ T5001] Modules linked in:
[   12.000003][ T5001] CPU: 1 UID: 0 PID: 5001 Comm: a.out Not tainted 6.18.0 #1 PREEMPT(full)
[   12.000004][ T5001] RIP: 0010:ext4_evict_inode+0x1a2/0x3c0 fs/ext4/inode.c:5123
[   12.000006][ T5001] RSP: 0018:ffffc90003a77b40 EFLAGS: 00010293
[   12.000007][ T5001] Call Trace:
[   12.000008][ T5001]  <TASK>
[   12.000009][ T5001]  evict+0x2a1/0x6b0 fs/inode.c:810
[   12.000010][ T5001]  do_unlinkat+0x3d2/0x5f0 fs/namei.c:4470
[   12.000012][ T5001]  entry_SYSCALL_64_after_hwframe+0x77/0x7f
[   12.000013][ T5001]  </TASK>
"""


def test_6x_warning_line_names_the_function() -> None:
    [r] = parse(WARN_6X).reports
    assert r.title == "WARNING in ext4_evict_inode"
    assert (r.cpu, r.comm, r.pid, r.guilty_file) == (1, "a.out", 5001, "fs/ext4/inode.c")


def test_6x_warning_at_an_unsymbolized_address_takes_the_stack() -> None:
    log = """\
[    7.100000][    C1] WARNING: kernel/time/hrtimer.c:1200 at 0x0, CPU#1: kworker/1:3/77
[    7.100001][    C1] Modules linked in:
[    7.100002][    C1] Call Trace:
[    7.100003][    C1]  <IRQ>
[    7.100004][    C1]  __warn+0x10/0x20
[    7.100005][    C1]  report_bug+0x30/0x40
[    7.100006][    C1]  my_timer_fn+0x55/0x90
[    7.100007][    C1]  call_timer_fn+0x20/0x40
"""
    assert _titles(log) == ["WARNING in my_timer_fn"]


def test_warning_still_has_locks_held_blames_where_the_lock_was_taken() -> None:
    log = """\
[   40.000001][ T7001] WARNING: a.out/7001 still has locks held!
[   40.000002][ T7001] 6.12.0 #1 Not tainted
[   40.000004][ T7001] 1 lock held by a.out/7001:
[   40.000006][ T7001]  #0: ffff88802a4b0e10 (&f->lock){+.+.}-{4:4}, at: fuse_flush+0x1b2/0x600
[   40.000008][ T7001] stack backtrace:
[   40.000010][ T7001] Call Trace:
[   40.000012][ T7001]  dump_stack_lvl+0x241/0x360
[   40.000014][ T7001]  get_signal+0x150a/0x1810
"""
    [r] = parse(log).reports
    assert r.title == "WARNING: still has locks held in fuse_flush"
    assert r.type == "LOCKDEP"


def test_x86_access_to_user_memory_is_a_paging_request() -> None:
    log = """\
[   50.000000] BUG: unable to handle kernel access to user memory
[   50.000001] #PF: supervisor read access in kernel mode
[   50.000004] Oops: 0001 [#1] PREEMPT SMP KASAN
[   50.000005] CPU: 1 PID: 8001 Comm: a.out Not tainted 6.3.0 #1
[   50.000006] RIP: 0010:nf_tables_newrule+0x2a1/0x1e60
[   50.000007] Call Trace:
[   50.000009]  nfnetlink_rcv_batch+0x15c0/0x2370
"""
    [r] = parse(log).reports
    assert r.title == "BUG: unable to handle kernel paging request in nf_tables_newrule"
    assert not r.garbled


RUST_PANIC = """\
[   30.100000][ T6100] rust_kernel: panicked at drivers/android/binder/thread.rs:812:25:
[   30.100001][ T6100] attempt to add with overflow
[   30.100002][ T6100] ------------[ cut here ]------------
[   30.100003][ T6100] kernel BUG at rust/helpers/bug.c:7!
[   30.100004][ T6100] Oops: invalid opcode: 0000 [#1] SMP KASAN PTI
[   30.100005][ T6100] CPU: 0 UID: 0 PID: 6100 Comm: a.out Not tainted 6.15.0 #1
[   30.100006][ T6100] RIP: 0010:rust_helper_BUG+0x8/0x10 rust/helpers/bug.c:7
[   30.100007][ T6100] Call Trace:
[   30.100008][ T6100]  <TASK>
[   30.100009][ T6100]  rust_begin_unwind+0x1a0/0x1b0 rust/kernel/lib.rs:204
[   30.100010][ T6100]  _RNvNtCs1Q8gXRYTBkq_4core9panicking9panic_fmt+0x80/0x90
[   30.100011][ T6100]  _RNvNtNtCs1Q8gXRYTBkq_4core9panicking11panic_const24panic_const_add_overflow+0x50/0x60
[   30.100012][ T6100]  _RNvMs2_NtCsdfZWD8DztAw_11rust_binder6threadNtB5_6Thread21copy_transaction_data+0x5a1/0x800
[   30.100014][ T6100]  do_syscall_64+0xcd/0x250
[   30.100016][ T6100]  </TASK>
"""


def test_rust_panic_is_one_report_titled_by_its_message_and_rust_function() -> None:
    [r] = parse(RUST_PANIC).reports  # the BUG() it ends in continues it
    assert r.title == "attempt to add with overflow in copy_transaction_data"
    assert r.type == "BUG"


def test_old_style_rust_panic_message() -> None:
    log = """\
[    9.000000] rust_kernel: panicked at 'index out of bounds: the len is 3 but the index is 5', rust/kernel/x.rs:10:5
[    9.000001] kernel BUG at rust/helpers/bug.c:7!
[    9.000002] Call Trace:
[    9.000003]  rust_begin_unwind+0x1a0/0x1b0
[    9.000004]  my_rust_probe+0x10/0x20
"""
    assert _titles(log) == [
        "index out of bounds: the len is NUM but the index is NUM in my_rust_probe"
    ]


def test_vfs_close_file_count_zero_is_a_crash() -> None:
    log = "[   60.000000] VFS: Close: file count is 0\n[   60.100000] a.out: something else\n"
    [r] = parse(log).reports
    assert r.title == "VFS: Close: file count is zero (use-after-free)"


def test_hung_task_line_cut_before_the_seconds_still_titles_the_hang() -> None:
    log = """\
[  300.000000] INFO: task a.out:5100 blocked for more than 1
[  300.000004] Call Trace:
[  300.000007]  __schedule+0x1800/0x4a60
[  300.000008]  schedule+0x14b/0x320
[  300.000012]  my_fs_truncate+0x9d1/0x1120
"""
    assert _titles(log) == ["INFO: task hung in my_fs_truncate"]


def test_hung_task_blocker_note_does_not_start_a_second_report() -> None:
    log = """\
[  300.000000] INFO: task a.out:5100 blocked for more than 143 seconds.
[  300.000004] Call Trace:
[  300.000008]  schedule+0x14b/0x320
[  300.000012]  my_fs_truncate+0x9d1/0x1120
[  300.000013] INFO: task a.out:5100 is blocked on a mutex likely owned by task b.out:5200.
[  300.000014] task:b.out state:S stack:0 pid:5200
"""
    assert _titles(log) == ["INFO: task hung in my_fs_truncate"]


ADVICE = """\
[    0.500000] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!
[    0.510000] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!
[    2.000000] XFS (loop0): WARNING: Filesystem needs repair, run xfs_repair
[    3.000000] ntfs3: loop1: WARNING: volume is dirty, run chkdsk or ntfsfix to repair it
[    4.000000] Please use the new mount API instead, the old one is deprecated
"""


def test_informational_warning_lines_are_no_crash() -> None:
    assert _titles(ADVICE) == []


def test_a_bare_one_line_warning_stays_a_crash() -> None:
    assert _titles("[    5.000000] WARNING: foo\n[    5.000001] a.out: ok\n") == ["WARNING: foo"]


def test_advice_words_with_a_stack_are_a_warn_splat() -> None:
    log = """\
[    6.000000] mydrv: WARNING: mitigation table corrupt
[    6.000001] Call Trace:
[    6.000002]  mydrv_probe+0x10/0x20
"""
    assert len(parse(log).reports) == 1


@pytest.mark.parametrize(
    "name",
    [
        "kmem_cache_alloc_noprof", "__kmalloc_node_track_caller", "kmalloc_trace",
        "vsnprintf", "sprintf", "strcat", "_raw_spin_lock_irqsave", "queued_spin_lock_slowpath",
        "rwsem_down_write_slowpath", "__ubsan_handle_out_of_bounds", "kcsan_setup_watchpoint",
        "entry_SYSCALL_64_after_hwframe", "asm_sysvec_apic_timer_interrupt", "el1h_64_sync",
        "skb_put", "__queue_work", "iput", "unlock_page", "rust_helper_BUG", "kref_put",
        "__vmalloc_node_range", "instrument_copy_from_user", "__hwasan_load8_noabort",
        "rb_first", "rb_next_postorder", "__local_bh_enable_ip", "__raw_readb", "logic_inb",
        "hex_string", "vscnprintf", "rhashtable_lookup_fast", "___kmalloc_large_node",
        "print_unlock_imbalance_bug", "valid_state",
    ],
)
def test_generic_helpers_are_skipped(name: str) -> None:
    assert SKIP_RE.search(name), name


@pytest.mark.parametrize(
    "name",
    ["ext4_evict_inode", "sock_sendmsg", "kfree_rcu_work", "copy_process",
     "get_page_from_freelist", "handle_softirqs", "lock_sock_nested", "skb_release_data",
     "rb_reserve_next_event", "readahead_folio"],
)
def test_real_code_is_not_skipped(name: str) -> None:
    assert not SKIP_RE.search(name), name


def test_every_skip_entry_compiles_and_says_why() -> None:
    for skip in (*GENERIC_FRAMES, *GUILTY_FILE_IGNORES):
        re.compile(skip.pattern)
        assert len(skip.why) > 10, skip


def test_guilty_file_skips_generic_files() -> None:
    lines = [" kasan_report+0x1/0x2 mm/kasan/report.c:10", " memcpy lib/string.c:5 [inline]",
             " my_ioctl+0x1/0x2 drivers/my/drv.c:42"]
    assert guilty_file(lines) == "drivers/my/drv.c"
