"""Unit tests for harness.kernel_log: families, events, prefixes, truncation, CLI hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kernel_log import Report, parse, parse_file, parse_log_main

PAGE_POISON = """\
[   41.123456] pagealloc: memory corruption
[   41.123500] 00000000b1c0e2a8: 00 00 01 00 2a 00 00 00 6b 6b 6b 6b 6b 6b 6b 6b  ........kkkkkkkk
[   41.123600] CPU: 3 PID: 212 Comm: oomrace-stress Not tainted 6.1.0 #1
[   41.123700] Hardware name: linux,dummy-virt (DT)
[   41.123800] Call trace:
[   41.123900]  dump_backtrace+0xe4/0x140
[   41.124000]  show_stack+0x20/0x30
[   41.124100]  dump_stack_lvl+0x64/0x80
[   41.124200]  dump_stack+0x18/0x34
[   41.124300]  __kernel_unpoison_pages+0x14c/0x1a0
[   41.124400]  get_page_from_freelist+0x8d4/0x1000
[   41.124500]  __alloc_pages+0x140/0x2c0
"""

X86_PAGING = """\
[   20.000001] BUG: unable to handle page fault for address: ffff888012345678
[   20.000002] #PF: supervisor write access in kernel mode
[   20.000003] #PF: error_code(0x0002) - not-present page
[   20.000004] Oops: 0002 [#1] PREEMPT SMP KASAN
[   20.000005] CPU: 0 PID: 321 Comm: oomrace-writer Tainted: G    B   W          6.6.0 #1
[   20.000006] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)
[   20.000007] RIP: 0010:memset_orig+0x33/0xb0
[   20.000008] Code: 48 89 f9 48 83 e1 07 74 15 48 29 ca 48 f7 d9 48 83 c1 08
[   20.000009] RSP: 0018:ffffc90000abfd38 EFLAGS: 00010206
[   20.000010] Call Trace:
[   20.000011]  <TASK>
[   20.000012]  ? __die+0x1f/0x70
[   20.000013]  ? page_fault_oops+0x15a/0x2d0
[   20.000014]  clear_user_page+0x12/0x20
[   20.000015]  do_anonymous_page+0x1c0/0x600
[   20.000016]  __handle_mm_fault+0x6ec/0xd30
[   20.000017]  handle_mm_fault+0x15c/0x310
[   20.000018]  </TASK>
[   20.000019] ---[ end trace 0000000000000000 ]---
[   20.000020] Kernel panic - not syncing: Fatal exception
"""

ARM64_NULL = """\
[   30.100000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008
[   30.100001] Mem abort info:
[   30.100002]   ESR = 0x0000000096000006
[   30.100003] Internal error: Oops: 0000000096000006 [#1] PREEMPT SMP
[   30.100004] Modules linked in:
[   30.100005] CPU: 2 PID: 77 Comm: oom_reaper Not tainted 6.1.0 #1
[   30.100006] Hardware name: linux,dummy-virt (DT)
[   30.100007] pstate: 60400005 (nZCv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)
[   30.100008] pc : __oom_reap_task_mm+0x7c/0x160
[   30.100009] lr : oom_reaper+0x1a8/0x3f0
[   30.100010] Call trace:
[   30.100011]  __oom_reap_task_mm+0x7c/0x160
[   30.100012]  oom_reaper+0x1a8/0x3f0
[   30.100013]  kthread+0x110/0x114
[   30.100014]  ret_from_fork+0x10/0x20
[   30.100015] ---[ end trace 0000000000000000 ]---
[   30.100016] Kernel panic - not syncing: Oops: Fatal exception
"""

OLD_WARNING = """\
[   10.000000] ------------[ cut here ]------------
[   10.000001] WARNING: CPU: 1 PID: 55 at mm/oom_kill.c:123 __oom_reap_task_mm+0x1a/0x30
[   10.000002] Modules linked in:
[   10.000003] CPU: 1 PID: 55 Comm: oom_reaper Tainted: G        W          6.1.0 #1
[   10.000004] RIP: 0010:__oom_reap_task_mm+0x1a/0x30
[   10.000005] Call Trace:
[   10.000006]  <TASK>
[   10.000007]  oom_reaper+0x100/0x200
[   10.000008]  kthread+0x10/0x20
[   10.000009]  ret_from_fork+0x1f/0x30
[   10.000010]  </TASK>
[   10.000011] ---[ end trace 0000000000000000 ]---
"""

NEW_WARNING = """\
[  100.000000][ T4242] ------------[ cut here ]------------
[  100.000001][ T4242] WARNING: mm/mmap.c:3301 at exit_mmap+0x3f5/0x490, CPU#0: oomrace/4242
[  100.000002][ T4242] Modules linked in:
[  100.000003][ T4242] CPU: 0 UID: 0 PID: 4242 Comm: oomrace Not tainted 6.16.0 #1 PREEMPT(full)
[  100.000004][ T4242] RIP: 0010:exit_mmap+0x3f5/0x490
[  100.000005][ T4242] Call Trace:
[  100.000006][ T4242]  <TASK>
[  100.000007][ T4242]  __mmput+0x12a/0x410
[  100.000008][ T4242]  do_exit+0x992/0x2a40
[  100.000009][ T4242]  </TASK>
"""


def only(text: str) -> Report:
    analysis = parse(text)
    assert len(analysis.reports) == 1, [r.title for r in analysis.reports]
    return analysis.reports[0]


# --- families ------------------------------------------------------------------------


def test_page_poisoning_report() -> None:
    analysis = parse(PAGE_POISON)
    assert len(analysis.reports) == 1
    r = analysis.reports[0]
    assert r.title == "pagealloc: memory corruption in get_page_from_freelist"
    assert r.type == "MEMORY-CORRUPTION"
    assert r.arch == "aarch64"
    assert r.guilty_function == "get_page_from_freelist"
    assert (r.cpu, r.pid, r.comm, r.taint) == (3, 212, "oomrace-stress", None)
    assert r.frames[:2] == ("dump_backtrace", "show_stack")
    assert r.start_line == 0
    assert r.lines[0] == "pagealloc: memory corruption"
    assert not r.garbled and r.garbled_reason == ""
    kinds = [e.kind for e in analysis.events]
    assert kinds == ["page_poison_corruption"]
    assert analysis.events[0].fields["address"] == "00000000b1c0e2a8"


def test_page_poisoning_without_stack_still_a_crash() -> None:
    r = parse("[ 1.0] pagealloc: memory corruption\n[ 1.1] random text\n").reports[0]
    assert r.title == "pagealloc: memory corruption in corrupted"
    assert r.garbled and r.garbled_reason


def test_x86_paging_request_title_rip_and_panic_is_not_a_second_report() -> None:
    analysis = parse(X86_PAGING)
    assert len(analysis.reports) == 1
    r = analysis.reports[0]
    assert r.title == "BUG: unable to handle kernel paging request in clear_user_page"
    assert r.type == "MEMORY-SAFETY-BUG"
    assert r.arch == "x86_64"
    assert r.taint == "G    B   W"
    assert "__die" not in r.frames  # "? " frames are unreliable
    assert r.frames[0] == "clear_user_page"


def test_arm64_null_deref() -> None:
    analysis = parse(ARM64_NULL)
    assert len(analysis.reports) == 1
    r = analysis.reports[0]
    assert r.title == "BUG: unable to handle kernel NULL pointer dereference in __oom_reap_task_mm"
    assert r.type == "NULL-POINTER-DEREFERENCE"
    assert r.arch == "aarch64"
    assert r.guilty_function == "__oom_reap_task_mm"
    assert r.comm == "oom_reaper"


def test_arch_override() -> None:
    assert parse(ARM64_NULL, arch="x86_64").reports[0].arch == "x86_64"


def test_old_style_warning() -> None:
    r = parse(OLD_WARNING).reports[0]
    assert r.title == "WARNING in __oom_reap_task_mm"
    assert r.type == "WARNING"
    assert r.guilty_file == "mm/oom_kill.c"
    assert (r.cpu, r.pid, r.comm) == (1, 55, "oom_reaper")
    assert r.taint == "G        W"


def test_new_style_warning_with_caller_tags() -> None:
    r = parse(NEW_WARNING).reports[0]
    assert r.title == "WARNING in exit_mmap"
    assert r.guilty_file == "mm/mmap.c"
    assert (r.cpu, r.pid, r.comm) == (0, 4242, "oomrace")


@pytest.mark.parametrize(
    ("log", "title", "typ"),
    [
        (
            "general protection fault, probably for non-canonical address 0xdffffc0000000001:"
            " 0000 [#1] SMP KASAN\nCPU: 0 PID: 1 Comm: a Not tainted 6.1.0 #1\n"
            "RIP: 0010:unmap_page_range+0x123/0x456\nCall Trace:\n zap_page_range+0x1/0x2\n",
            "general protection fault in unmap_page_range",
            "DOS",
        ),
        (
            "kernel BUG at mm/huge_memory.c:2000!\ninvalid opcode: 0000 [#1] SMP\n"
            "RIP: 0010:split_huge_page_to_list+0x1/0x2\nCall Trace:\n foo+0x1/0x2\n",
            "kernel BUG in split_huge_page_to_list",
            "BUG",
        ),
        (
            "==================================================================\n"
            "BUG: KASAN: use-after-free in oom_reaper+0x10/0x20\n"
            "Read of size 8 at addr ffff888000000000 by task oom_reaper/55\n\n"
            "Call Trace:\n dump_stack_lvl+0x1/0x2\n kasan_report+0x1/0x2\n"
            " oom_reaper+0x10/0x20\n kthread+0x1/0x2\n",
            "KASAN: use-after-free Read in oom_reaper",
            "KASAN-USE-AFTER-FREE-READ",
        ),
        (
            "BUG: KFENCE: out-of-bounds read in test_oob+0x1/0x2\n\n"
            "Out-of-bounds read at 0xffff (1B right of kfence-#1):\n test_oob+0x1/0x2\n",
            "KFENCE: out-of-bounds read in test_oob",
            "KFENCE-READ",
        ),
        (
            "UBSAN: array-index-out-of-bounds in mm/foo.c:12:3\nindex 5 is out of range\n"
            "Call Trace:\n dump_stack+0x1/0x2\n ubsan_epilogue+0x1/0x2\n"
            " __ubsan_handle_out_of_bounds+0x1/0x2\n bar+0x1/0x2\n",
            "UBSAN: array-index-out-of-bounds in bar",
            "MEMORY-SAFETY-UBSAN",
        ),
        (
            "BUG: Bad page state in process oomrace  pfn:1234\n"
            "page:ffffea0000000000 refcount:0 mapcount:1\nCall Trace:\n dump_stack+0x1/0x2\n"
            " bad_page+0x1/0x2\n free_pages_prepare+0x1/0x2\n exit_mmap+0x1/0x2\n",
            "BUG: Bad page state in exit_mmap",
            "MEMORY-CORRUPTION",
        ),
        (
            "BUG: Bad rss-counter state mm:ffff888000000000 type:MM_ANONPAGES val:-1\n",
            "BUG: Bad rss-counter state",
            "MEMORY-CORRUPTION",
        ),
        (
            "list_del corruption. next->prev should be ffff888000000000, but was dead000000000122\n"
            "------------[ cut here ]------------\nkernel BUG at lib/list_debug.c:62!\n"
            "RIP: 0010:__list_del_entry_valid+0x1/0x2\nCall Trace:\n"
            " free_pcppages_bulk+0x1/0x2\n",
            "BUG: corrupted list in free_pcppages_bulk",
            "MEMORY-SAFETY-BUG",
        ),
        (
            "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [oomrace:99]\n"
            "RIP: 0010:spin_loop+0x1/0x2\nCall Trace:\n spin_loop+0x1/0x2\n"
            " do_syscall_64+0x1/0x2\n",
            "BUG: soft lockup in spin_loop",
            "HANG",
        ),
        (
            "INFO: task oomrace:99 blocked for more than 143 seconds.\n"
            "      Not tainted 6.1.0 #1\nCall Trace:\n __schedule+0x1/0x2\n schedule+0x1/0x2\n"
            " rwsem_down_read_slowpath+0x1/0x2\n do_exit_mm+0x1/0x2\n",
            "INFO: task hung in do_exit_mm",
            "HANG",
        ),
        (
            "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\nCall Trace:\n <IRQ>\n"
            " asm_sysvec_apic_timer_interrupt+0x1/0x2\n busy_fn+0x1/0x2\n"
            " do_syscall_64+0x1/0x2\n",
            "INFO: rcu detected stall in busy_fn",
            "HANG",
        ),
        (
            "======================================================\n"
            "WARNING: possible circular locking dependency detected\n"
            "oomrace/1 is trying to acquire lock:\n"
            "ffff888000000000 (&mm->mmap_lock){++++}-{3:3}, at: oom_reap_mm+0x1/0x2\n",
            "possible deadlock in oom_reap_mm",
            "LOCKDEP",
        ),
        (
            "Kernel panic - not syncing: Out of memory and no killable processes...\n"
            "CPU: 0 PID: 1 Comm: init Not tainted 6.1.0 #1\n",
            "kernel panic: Out of memory and no killable processes...",
            "DOS",
        ),
    ],
)
def test_families(log: str, title: str, typ: str) -> None:
    reports = parse(log).reports
    assert reports, "no report found"
    assert reports[0].title == title
    assert reports[0].type == typ


def test_panic_after_crash_keeps_first_title() -> None:
    log = OLD_WARNING + "[   10.000012] Kernel panic - not syncing: panic_on_warn set ...\n"
    analysis = parse(log)
    assert [r.title for r in analysis.reports] == ["WARNING in __oom_reap_task_mm"]


def test_two_crashes_are_two_reports() -> None:
    analysis = parse(OLD_WARNING + PAGE_POISON)
    assert [r.title for r in analysis.reports] == [
        "WARNING in __oom_reap_task_mm",
        "pagealloc: memory corruption in get_page_from_freelist",
    ]
    assert analysis.reports[1].start_line == OLD_WARNING.count("\n")


def test_no_crash_in_clean_log() -> None:
    log = (
        "[    0.000000] Linux version 6.1.0 (gcc) #1 SMP\n"
        "[    1.000000] INFO: lockdep is turned off.\n"
        "[    1.100000] BTF_INFO: ok\n"
        "[    1.200000] WARNING: /etc/ssh/moduli does not exist, using fixed modulus\n"
        "buildroot login: root\n"
    )
    analysis = parse(log)
    assert analysis.reports == []
    assert not analysis.crashed


# --- prefixes, interleaving, truncation ----------------------------------------------


def test_no_timestamps_and_login_prompt() -> None:
    text = "\n".join(line.split("] ", 1)[1] for line in OLD_WARNING.splitlines())
    assert parse(text).reports[0].title == "WARNING in __oom_reap_task_mm"
    lines = OLD_WARNING.splitlines()
    lines[1] = "buildroot login: " + lines[1]
    lines.insert(3, "user output without a timestamp")
    r = only("\n".join(lines))
    assert r.title == "WARNING in __oom_reap_task_mm"
    assert "user output without a timestamp" not in r.lines


def test_crlf_and_printk_levels() -> None:
    text = "".join(f"<4>{line}\r\n" for line in OLD_WARNING.splitlines())
    r = parse(text).reports[0]
    assert r.title == "WARNING in __oom_reap_task_mm"


def test_interleaved_cpus_are_kept_apart() -> None:
    mine = NEW_WARNING.splitlines()
    other = [f"[  100.00000{i}][ T9999] noise from another task line {i}" for i in range(len(mine))]
    other[5] = "[  100.000005][ T9999]  bogus_frame+0x1/0x2"
    text = "\n".join(x for pair in zip(mine, other, strict=True) for x in pair)
    r = parse(text).reports[0]
    assert r.title == "WARNING in exit_mmap"
    assert all("T9999" not in ln and "noise" not in ln for ln in r.lines)
    assert "bogus_frame" not in r.frames


def test_cpu_caller_tags() -> None:
    text = "\n".join(line.replace("] ", "][    C1] ", 1) for line in X86_PAGING.splitlines())
    r = parse(text).reports[0]
    assert r.title == "BUG: unable to handle kernel paging request in clear_user_page"


def test_truncated_report_is_corrupted_not_an_error() -> None:
    text = "\n".join(X86_PAGING.splitlines()[:3])
    r = parse(text).reports[0]
    assert r.title == "BUG: unable to handle kernel paging request in corrupted"
    assert r.garbled and r.garbled_reason


def test_truncated_last_line_without_newline() -> None:
    assert parse(PAGE_POISON.rstrip("\n")).reports[0].guilty_function == "get_page_from_freelist"


def test_module_frames_and_inline_frames() -> None:
    log = (
        "WARNING: CPU: 0 PID: 1 at drivers/foo/bar.c:10 bar_fn+0x1/0x2 [foo]\n"
        "Call Trace:\n"
        " helper_inline drivers/foo/bar.c:5 [inline]\n"
        " bar_fn+0x1/0x2 [foo]\n"
        " ? unreliable_fn+0x1/0x2\n"
    )
    r = parse(log).reports[0]
    assert r.title == "WARNING in helper_inline"
    assert r.frames == ("helper_inline", "bar_fn")


# --- events --------------------------------------------------------------------------

OOM_LOG = """\
[    0.000000] Linux version 6.1.0 (builder@host) (gcc 12) #1 SMP PREEMPT
[    5.100000] oomrace-stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0
[    5.200000] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=oomrace-stress,pid=123,uid=0
[    5.300000] Out of memory: Killed process 123 (oomrace-stress) total-vm:1048576kB, anon-rss:524288kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1100kB oom_score_adj:0
[    5.400000] oom_reaper: reaped process 123 (oomrace-stress), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
[    6.000000] CPU: 1 PID: 55 Comm: oom_reaper Tainted: G        W          6.1.0 #1
[    7.000000] loop: module verification failed: signature and/or required key missing - tainting kernel
[    9.000000] Linux version 6.1.0 (builder@host) (gcc 12) #1 SMP PREEMPT
"""  # noqa: E501


def test_oom_events() -> None:
    events = parse(OOM_LOG).events
    kinds = [e.kind for e in events]
    assert kinds == ["boot_banner", "oom_kill", "oom_reaped", "taint", "taint", "reboot"]
    kill = events[1]
    assert kill.line == 2
    assert kill.fields["pid"] == "123"
    assert kill.fields["comm"] == "oomrace-stress"
    assert kill.fields["anon-rss"] == "524288kB"
    assert kill.fields["constraint"] == "CONSTRAINT_NONE"
    reaped = events[2]
    assert reaped.fields == {
        "pid": "123",
        "comm": "oomrace-stress",
        "anon-rss": "0kB",
        "file-rss": "0kB",
        "shmem-rss": "0kB",
    }
    assert events[3].fields["flags"] == "G        W"
    assert "module verification failed" in events[4].fields["reason"]
    assert events[0].fields["version"] == "6.1.0"
    assert events[5].line == 7


def test_kill_without_constraint_line_and_old_format() -> None:
    log = "Out of memory: Kill process 77 (hog) score 900 or sacrifice child\n"
    log += "Killed process 77 (hog) total-vm:100kB, anon-rss:50kB, file-rss:0kB\n"
    events = parse(log).events
    assert [e.kind for e in events] == ["oom_kill", "oom_kill"]
    assert events[0].fields["score"] == "900"
    assert events[1].fields["anon-rss"] == "50kB"


def test_reboot_ends_a_report() -> None:
    log = OLD_WARNING + "[    0.000000] Linux version 6.1.0 #1\n[    1.0] after reboot\n"
    r = parse(log).reports[0]
    assert all("after reboot" not in ln for ln in r.lines)


def test_to_dict_is_json() -> None:
    d = parse(OOM_LOG + PAGE_POISON).to_dict()
    assert set(d) == {"reports", "events"}
    assert d["reports"][0]["title"].startswith("pagealloc: memory corruption")
    assert set(d["reports"][0]) == {
        "title",
        "type",
        "arch",
        "guilty_function",
        "guilty_file",
        "frames",
        "cpu",
        "pid",
        "comm",
        "taint",
        "garbled",
        "garbled_reason",
        "lines",
        "start_line",
        "symbolized",
    }
    assert d["reports"][0]["symbolized"] == []  # filled in by harness.symbolize only
    assert d["events"][0] == {"kind": "boot_banner", "line": 0, "fields": {"version": "6.1.0"}}
    json.dumps(d)


# --- files and the CLI hook ------------------------------------------------------------


def test_parse_file_decodes_bad_bytes(tmp_path: Path) -> None:
    p = tmp_path / "console.log"
    p.write_bytes(b"\xff\xfe garbage\n" + PAGE_POISON.encode())
    assert parse_file(p).reports[0].type == "MEMORY-CORRUPTION"


def test_parse_file_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.log.*no such file"):
        parse_file(tmp_path / "nope.log")


def test_parse_file_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="directory"):
        parse_file(tmp_path)


def test_parse_log_main_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = parse_log_main(str(tmp_path / "missing.log"), as_json=False)
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing.log" in err and "no such file" in err


def test_parse_log_main_crash_and_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crash = tmp_path / "crash.log"
    crash.write_text(OOM_LOG + PAGE_POISON)
    assert parse_log_main(str(crash), as_json=False) == 1
    out = capsys.readouterr().out
    assert "pagealloc: memory corruption in get_page_from_freelist" in out
    assert "oom_kill" in out
    assert parse_log_main(str(crash), as_json=True) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["reports"][0]["type"] == "MEMORY-CORRUPTION"
    clean = tmp_path / "clean.log"
    clean.write_text(OOM_LOG)
    assert parse_log_main(str(clean), as_json=False) == 0
    assert "no crash found" in capsys.readouterr().out


def test_prompt_and_terminal_escapes_before_a_kernel_line() -> None:
    # As captured from a busybox shell on a guest's serial console.
    log = (
        "oomrace# \x1b[6n[    5.166294] WARNING: CPU: 0 PID: 1 at mm/oom_kill.c:123 "
        "__oom_reap_task_mm+0x10/0x20\n"
        "[    5.166884] Modules linked in:\n"
        "[    5.167430] RIP: 0010:__oom_reap_task_mm+0x10/0x20\n"
        "[    5.167681] Call Trace:\n"
        "[    5.168184]  <TASK>\n"
        "[    5.168434]  oom_reaper+0x1a0/0x3c0\n"
        "[    5.169080]  </TASK>\n"
    )
    assert [r.title for r in parse(log).reports] == ["WARNING in __oom_reap_task_mm"]


def test_parse_file_streams_a_large_log_in_bounded_memory(tmp_path: Path) -> None:
    # Reports at the start, in the middle and at the end of ~24 MB of console lines: all
    # are found, and memory peaks at the scanner's window (a report spans at most
    # MAX_REPORT_LINES lines), not at the size of the file.
    import tracemalloc

    filler = "[   11.000000] oomrace: writer 3 wrote page 0x7f0000001000 generation 1234\n"
    half = (12 << 20) // len(filler)
    log = tmp_path / "console.log"
    with log.open("w") as f:
        for _ in range(2):
            f.write(PAGE_POISON)
            for _ in range(half // 1000):
                f.write(filler * 1000)
        f.write(PAGE_POISON)
    size = log.stat().st_size
    assert size > 20 << 20
    tracemalloc.start()
    try:
        reports = parse_file(log).reports
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(reports) == 3
    assert {r.title for r in reports} == {"pagealloc: memory corruption in get_page_from_freelist"}
    assert reports[0].start_line == 0 and reports[2].start_line > reports[1].start_line > 0
    assert peak < 16 << 20, f"peak {peak >> 20} MiB while parsing {size >> 20} MiB"
