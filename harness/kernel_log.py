"""Parse a Linux console log / dmesg into crash reports and notable events.

`parse(text)` finds every kernel crash report in a console log (oops, BUG, WARNING,
KASAN/KFENCE/KMSAN/UBSAN, lockdep, hangs, stalls, panics, page-poisoning
corruption, ...) and gives each a stable, syzkaller-style title such as
``WARNING in foo`` or ``BUG: unable to handle kernel paging request in bar``. It also
reports events that matter to an OOM-reaper race hunt: OOM kills, reaped
processes, taint changes, boot banners and reboots.

How it works
------------
* Every line is split into an optional console prefix (``[  12.345678]``,
  ``[  12.3][ T123]`` caller tags, ``<4>`` log levels, a ``login:`` prompt glued in
  front) and the kernel text. The caller tag (``T123``/``C1``) is the line's
  *context*; lines of other contexts are left out of a report, which is what keeps
  interleaved CPUs apart. ``? `` (unreliable) stack frames are dropped.
* Crash families are data (`FAMILIES`): a literal header that starts a report,
  suppressions that veto it, and an ordered list of formats, each a title regex,
  an optional whole-report regex, a title template and a recipe for finding the
  guilty function in the stack (`StackSpec`).
* A single compiled alternation of all headers (plus event keywords) is run over
  the whole text first; only the lines it hits are looked at further, so a 10 MB
  log is parsed in well under a second.

Report types
------------
``Report.type`` is one of: ``WARNING``, ``BUG``, ``HANG``, ``LOCKDEP``,
``ATOMIC-SLEEP``, ``LEAK``, ``DOS`` (panic, GPF, double fault and other
machine-stopping faults), ``NULL-POINTER-DEREFERENCE``, ``MEMORY-SAFETY-BUG``
(wild paging request, corrupted list), ``MEMORY-CORRUPTION`` (page poisoning,
bad page state/map, bad rss-counter), ``REFCOUNT-WARNING``, ``UBSAN``,
``MEMORY-SAFETY-UBSAN``, ``KASAN-READ``, ``KASAN-WRITE``,
``KASAN-USE-AFTER-FREE-READ``, ``KASAN-USE-AFTER-FREE-WRITE``,
``KASAN-INVALID-FREE``, ``KASAN-NULL-POINTER-DEREFERENCE-READ``/``-WRITE``,
``KASAN-UNKNOWN``, ``KFENCE-READ``, ``KFENCE-WRITE``, ``KFENCE-USE-AFTER-FREE-READ``,
``KFENCE-USE-AFTER-FREE-WRITE``, ``KFENCE-MEMORY-CORRUPTION``, ``KFENCE-INVALID-FREE``,
``KFENCE-UNKNOWN``, ``KMSAN-UNINIT-VALUE``, ``KMSAN-INFO-LEAK``,
``KMSAN-USE-AFTER-FREE-READ``, ``KMSAN-UNKNOWN``, ``KCSAN-DATARACE``,
``KCSAN-ASSERT``, ``KCSAN-UNKNOWN``, ``SYZ-FAILURE``, ``UNKNOWN``.

Event kinds
-----------
``boot_banner`` (the first ``Linux version`` line), ``reboot`` (a later one),
``oom_kill`` (``oom-kill:constraint=...`` and ``Out of memory: Killed process``
lines of one kill merged), ``oom_reaped`` (``oom_reaper: reaped process``),
``taint`` (the taint flags changed, or the kernel said it is tainting itself),
``page_poison_corruption`` (``pagealloc: memory corruption``).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import accumulate
from pathlib import Path
from typing import IO, Any, NamedTuple

from harness.arches import ARCHES
from harness.errors import UsageError
from harness.schema import versioned

__all__ = [
    "FAMILIES",
    "Event",
    "Family",
    "Format",
    "LogAnalysis",
    "Report",
    "StackSpec",
    "parse",
    "parse_file",
    "parse_log_main",
]

# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One crash report found in the log."""

    title: str
    type: str
    arch: str | None
    guilty_function: str | None
    guilty_file: str | None
    frames: tuple[str, ...]
    cpu: int | None
    pid: int | None
    comm: str | None
    taint: str | None
    corrupted: bool
    lines: tuple[str, ...]
    start_line: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "type": self.type,
            "arch": self.arch,
            "guilty_function": self.guilty_function,
            "guilty_file": self.guilty_file,
            "frames": list(self.frames),
            "cpu": self.cpu,
            "pid": self.pid,
            "comm": self.comm,
            "taint": self.taint,
            "corrupted": self.corrupted,
            "lines": list(self.lines),
            "start_line": self.start_line,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report `to_dict` wrote (its keys are the field names)."""
        values: dict[str, Any] = {
            f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
            for f in fields(cls)}
        return cls(**values)


@dataclass
class Event:
    """A notable non-crash line: OOM kill, reaped process, taint, boot banner, reboot."""

    kind: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, "fields": dict(self.fields)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(str(data["kind"]), int(data["line"]), dict(data.get("fields") or {}))


@dataclass
class LogAnalysis:
    """Everything `parse` found, in log order."""

    reports: list[Report]
    events: list[Event]

    @property
    def crashed(self) -> bool:
        return bool(self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reports": [r.to_dict() for r in self.reports],
            "events": [e.to_dict() for e in self.events],
        }


# --------------------------------------------------------------------------------------
# Pattern vocabulary
# --------------------------------------------------------------------------------------

_PC = r"\[<?(?:0x)?[0-9a-f]+>?\]"
_FUNC = r"([A-Za-z0-9_]+)(?:[.+]| [\w/.-]+\.[chS]:\d)"
_SRC = r"([\w/.-]+\.[a-zA-Z]+:\d+)"


def _rx(pattern: str) -> re.Pattern[str]:
    """Compile with the {{PC}}, {{FUNC}}, {{SRC}} shorthands expanded."""
    pattern = pattern.replace("{{PC}}", _PC).replace("{{FUNC}}", _FUNC)
    return re.compile(pattern.replace("{{SRC}}", _SRC))


# The faulting-PC line: x86 `RIP: 0010:func+0x..`, old `IP: [<..>] func+..`,
# arm64 `pc : func+0x..`, arm32 `PC is at func+0x..`, powerpc `NIP [..] func+..`.
_RIP = _rx(
    r"(?:^|\s)(?:N?IP:? (?:(?:\d+:)?(?:{{PC}} +){0,2})|RIP: (?:\d+:)?(?:{{PC}} +){0,2}"
    r"|(?:e?pc|PC) : (?:{{PC}} +)?|PC is at |NIP \[[0-9a-f]+\] )(?:\d+:)?{{FUNC}}"
)
_CALL_TRACE = re.compile(r"Call [Tt]race:|^\s*Backtrace:")
# Lines that start a (new) stack trace inside a report.
_STACK_STARTS = (
    re.compile(r"Call [Tt]race"),
    re.compile(r"Allocated:"),
    re.compile(r"Allocated by task \d+:"),
    re.compile(r"Freed:"),
    re.compile(r"Freed by task \d+:"),
    re.compile(r"[^k] backtrace:"),
    re.compile(r"^\s*Last potentially related work creation:"),
)
# One stack frame: `[<ffff>] func+0x1/0x2 [mod]`, `func.isra.0+0x1/0x2`,
# symbolized `func file.c:12 [inline]`, arm32 `[<c0544db4>] (func) from ...`.
_FRAME_RES = (
    re.compile(
        r"^\s*(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*){0,2}(?:\d+:)?([A-Za-z0-9_]+)"
        r"(?:\.[A-Za-z0-9_.]+)?\+0x[0-9a-f]+/0x[0-9a-f]+"
    ),
    re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*) [\w/.-]+\.[chS]:\d+ \[inline\]"),
    re.compile(r"^\s*\[<[0-9a-f]+>\] \(([A-Za-z0-9_]+)[.+)]"),
)
_ARM32_CALLER = re.compile(r"\) from \[<[0-9a-f]+>\] \(([A-Za-z0-9_]+)[.+)]")
# Generic reporting/helper functions never named as the guilty function (regex search).
SKIP_FRAMES: tuple[str, ...] = (
    r"^__sanitizer",
    r"^__asan",
    r"kasan",
    r"^__msan",
    r"kmsan",
    r"kfence",
    r"check_memory_region",
    r"read_word_at_a_time",
    r"print_address_description",
    r"print_report",
    r"panic",
    r"invalid_op",
    r"report_bug",
    r"fixup_bug",
    r"^do_error",
    r"_trap$",
    r"^do_trap",
    r"handle_bug",
    r"^exc_",
    r"^asm_exc_",
    r"^bug_handler",
    r"^brk_handler",
    r"^call_break_hook",
    r"^el1_",
    r"^el0_",
    r"^die$",
    r"^__die",
    r"^do_mem_abort",
    r"^do_kernel_fault",
    r"^__do_kernel_fault",
    r"^die_kernel_fault",
    r"^do_translation_fault",
    r"^do_page_fault",
    r"^__bad_area",
    r"^bad_area",
    r"^page_fault_oops",
    r"^no_context",
    r"^kernelmode_fixup_or_oops",
    r"dump_stack",
    r"^dump_backtrace",
    r"^show_stack",
    r"^show_regs",
    r"^__show_regs",
    r"warn_slowpath",
    r"warn_alloc",
    r"^__warn",
    r"^warn_",
    r"debug_object",
    r"timer_is_static_object",
    r"work_is_static_object",
    r"lockdep",
    r"perf_trace",
    r"lock_acquire",
    r"lock_release",
    r"lock_class",
    r"^mark_lock",
    r"^mark_held_locks",
    r"^mark_usage",
    r"print_usage_bug",
    r"^trace_hardirqs",
    r"^__might_resched",
    r"kvfree",
    r"^rb_erase",
    r"^rb_insert",
    r"^__rb_",
    r"reacquire_held_locks",
    r"spin_lock",
    r"spin_trylock",
    r"spin_unlock",
    r"raw_read_lock",
    r"raw_read_trylock",
    r"raw_write_lock",
    r"raw_write_trylock",
    r"^_?_?down(?:_read|_write)?(?:_common|_slowpath|_trylock|_killable|_interruptible)*$",
    r"^_?_?up_(?:read|write)$",
    r"^_?_?up$",
    r"mutex_lock",
    r"mutex_trylock",
    r"mutex_unlock",
    r"mutex_remove_waiter",
    r"osq_lock",
    r"osq_unlock",
    r"^_?_?wake_up",
    r"refcount_(?:add|sub|inc|dec|set|read|warn)",
    r"memcpy",
    r"memcmp",
    r"memset",
    r"memchr",
    r"memmove",
    r"^str(?:n?cmp|l?n?cpy|scpy|n?len|nstr|chr)$",
    r"copy_to_user",
    r"copy_from_user",
    r"^_?_?put_user",
    r"^_?_?get_user",
    r"might_fault",
    r"might_sleep",
    r"list_add",
    r"list_del",
    r"list_replace",
    r"list_move",
    r"list_splice",
    r"_indirect_thunk_",
    r"^string$",
    r"^pointer$",
    r"snprintf",
    r"kasprintf",
    r"kvasprintf",
    r"printk",
    r"va_format",
    r"^_?dev_(?:info|notice|warn|err|alert|crit|emerg|printk)",
    r"program_check_exception",
    r"program_check_common",
    r"del_timer",
    r"flush_work",
    r"__cancel_work_timer",
    r"cancel_work_sync",
    r"try_to_grab_pending",
    r"^_?_?flush_workqueue",
    r"drain_workqueue",
    r"destroy_workqueue",
    r"finish_wait",
    r"kthread_stop",
    r"kobject_del",
    r"kobject_put",
    r"kobject_uevent_env",
    r"add_uevent_var",
    r"get_device_parent",
    r"^device_add$",
    r"^device_del$",
    r"device_unregister",
    r"device_destroy",
    r"device_release",
    r"devres_release_all",
    r"hwrng_unregister",
    r"i2c_del_adapter",
    r"__unregister_client",
    r"device_for_each_child",
    r"rollback_registered",
    r"unregister_netdev",
    r"sysfs_remove",
    r"device_remove_file",
    r"tty_unregister_device",
    r"dummy_urb_enqueue",
    r"usb_kill_urb",
    r"usb_kill_anchored_urbs",
    r"usb_control_msg",
    r"usb_hcd_submit_urb",
    r"usb_submit_urb",
    r"^complete$",
    r"wait_for_completion",
    r"^kfree$",
    r"kfree_skb",
    r"^check_poison_mem",
    r"^__?kernel_unpoison_pages",
    r"^unpoison_page",
    r"^check_poison",
    r"^__check_object_size",
    r"^check_object",
    r"^bad_page$",
    r"^__?dump_page",
    r"fortify",
    r"^_?_?atomic_",
    r"^arch_atomic",
    r"^_?_?dec_and_lock",
    r"^dput$",
    r"^fast_dput$",
    r"^free_large_kmalloc",
    r"^folio_unlock$",
    r"^ida_free$",
    r"^ref_tracker",
    r"^__alloc_pages",
    r"^alloc_pages",
    r"^kmalloc_order",
    r"^__kmalloc",
    r"^skb_push$",
    r"^skb_under_panic",
    r"check_heap_object",
    r"^_?compound_head$",
    r"^do_tag_",
    r"copy_(?:page_)?to_iter",
)
_SKIP_RE = re.compile("|".join(f"(?:{p})" for p in SKIP_FRAMES))


@dataclass(frozen=True)
class StackSpec:
    """How to find the guilty function.

    `parts` are tried in order over the report lines: a regex advances to the first
    line it matches (yielding its group 1 as a candidate frame when it has one);
    None means "parse a stack trace from here". `parts2` is the fallback recipe.
    `skip` adds family-specific frame patterns to `SKIP_FRAMES`; `extractor`
    chooses among the collected frames (default: the first).
    """

    parts: tuple[re.Pattern[str] | None, ...]
    parts2: tuple[re.Pattern[str] | None, ...] = ()
    skip: tuple[str, ...] = ()
    extractor: Callable[[list[str]], str | None] | None = None


@dataclass(frozen=True)
class Format:
    """One title recipe: `title` (regex) matched in the report, `report` (regex over the
    whole report text) must match too when set; `fmt` is filled with the named
    groups of the report (or title) match and ``{func}`` from `stack`."""

    title: re.Pattern[str]
    fmt: str
    report: re.Pattern[str] | None = None
    stack: StackSpec | None = None
    corrupted: bool = False


@dataclass(frozen=True)
class Family:
    """A literal `header` that starts a report, `suppress` regexes that veto it."""

    header: str
    formats: tuple[Format, ...]
    suppress: tuple[re.Pattern[str], ...] = ()


# ---- frame extractors ------------------------------------------------------------------

_STALL_ANCHORS = re.compile(
    "|".join(
        (
            r"process_one_work",
            r"do_syscall_",
            r"do_fast_syscall_",
            r"sysenter_dispatch",
            r"tracesys_phase2",
            r"netif_receive_skb",
            r"do_softirq",
            r"call_timer_fn",
            r"_run_timers",
            r"run_timer_softirq",
            r"run_ksoftirqd",
            r"smpboot_thread_fn",
            r"^kthread$",
            r"start_secondary",
            r"cpu_startup_entry",
            r"ret_from_fork",
            r"vfs_(?:write|read|iter_read|iter_write|ioctl|open)",
            r"do_iter_(?:read|write)",
            r"ksys_ioctl",
            r"compat_ioctl",
            r"compat_sys_ioctl",
            r"ret_fast_syscall",
            r"blkdev_driver_ioctl",
            r"blkdev_ioctl",
            r"^call_(?:read|write)_iter",
            r"do_iter_readv_writev",
            r"^call_mmap",
            r"mmap_region",
            r"do_mmap",
            r"do_dentry_open",
            r"^sock_(?:sendmsg|recvmsg|release|mmap|do_ioctl|ioctl)",
            r"^__sock_release",
            r"__sys_setsockopt",
            r"kernel_setsockopt",
            r"sock_common_setsockopt",
            r"__sys_listen",
            r"kernel_listen",
            r"sk_common_release",
            r"__sys_accept",
            r"kernel_accept",
            r"^compat_sock_ioctl",
            r"^nfnetlink_rcv_msg",
            r"^rtnetlink_rcv_msg",
            r"^(?:compat_)?(?:SYSC|SyS|__sys|___sys|__do_sys|__se_sys|__x64_sys|__arm64_sys)"
            r"_(?:socketpair|connect|ioctl)",
            r"^new_sync_(?:read|write)$",
            r"^netlink_dump$",
            r"__fput",
            r"task_work_run",
            r"exit_to_usermode",
            r"smp_call_function",
        )
    )
)
_SYSCALL_PREFIXES = (
    "__x64_",
    "__arm64_",
    "SYSC_",
    "SyS_",
    "compat_SYSC_",
    "compat_SyS_",
    "__ia32_",
    "ksys_",
    "sys_",
)


def _strip_syscall(frame: str) -> str:
    """Drop one syscall-entry prefix (the one leaving the shortest name)."""
    best = frame
    for prefix in _SYSCALL_PREFIXES:
        if frame.startswith(prefix) and len(frame) - len(prefix) < len(best):
            best = frame[len(prefix) :]
    return best


def _stall_extractor(frames: list[str]) -> str | None:
    """Stalls loop somewhere random: name them after the frame just above the entry point."""
    prev = frames[0]
    for frame in frames:
        if _STALL_ANCHORS.search(frame):
            if "smp_call_function" in frame:
                return "smp_call_function"
            return _strip_syscall(prev)
        prev = frame
    return None


_HANG_ANCHORS = (
    ("rtnl_lock", "rtnl_lock"),
    ("synchronize_rcu", "synchronize_rcu"),
    ("synchronize_srcu", "synchronize_rcu"),
    ("synchronize_net", "synchronize_rcu"),
    ("synchronize_sched", "synchronize_rcu"),
)
_HANG_SKIP = (
    "sched",
    "_lock",
    "_slowlock",
    "down",
    "rwsem",
    "completion",
    "kthread",
    "wait",
    "synchronize",
    "context_switch",
    "__switch_to",
    "cancel_delayed_work",
    "rcu_barrier",
)


def _hang_extractor(frames: list[str]) -> str | None:
    """Hung tasks: group the usual suspects, else the first frame that is not waiting."""
    for frame in frames:
        for anchor, name in _HANG_ANCHORS:
            if anchor in frame:
                return name
    for frame in frames:
        if not any(s in frame for s in _HANG_SKIP):
            return frame
    return None


# ---- the families --------------------------------------------------------------------


def _warning_stack(*skip: str) -> StackSpec:
    return StackSpec(
        parts=(_rx(r"(?:" + _RIP.pattern + r"|--- interrupt: [0-9]+ at {{FUNC}})"), None),
        parts2=(_CALL_TRACE, None),
        skip=skip,
    )


# Where the interrupted code starts in a stall report's stack.
_STALL_IRQ = re.compile(r"apic_timer_interrupt|\(__irq_svc\)|\b__irq_svc\+|el1h_64_irq\b")
_RIP_STACK = StackSpec(parts=(_RIP, _CALL_TRACE, None), parts2=(_CALL_TRACE, None))
_TRACE_STACK = StackSpec(parts=(_CALL_TRACE, None))
_RIP_ONLY = StackSpec(parts=(_RIP,), parts2=(_CALL_TRACE, None))
_LOCK_AT = _rx(r"at: (?:{{PC}} +)?{{FUNC}}")

_KASAN_SKIP = ("^kmem_", "^slab_", "^kfree", "^vunmap", "^vfree", "^__free_", "^free_")

FAMILIES: tuple[Family, ...] = (
    Family(
        "BUG:",
        (
            Format(
                _rx(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}"),
                "KASAN: {kind} {rw} in {func}",
                report=_rx(
                    r"BUG: KASAN: (?P<kind>[a-z\-]+) in [A-Za-z0-9_]+(?:.*\n){0,12}?"
                    r".*(?P<rw>Read|Write) (?:of|at addr)"
                ),
                stack=StackSpec(
                    parts=(_rx(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), _CALL_TRACE, None)
                ),
            ),
            Format(
                _rx(r"BUG: KASAN: double-free or invalid-free in {{FUNC}}"),
                "KASAN: invalid-free in {func}",
                stack=StackSpec(
                    parts=(
                        _rx(r"BUG: KASAN: double-free or invalid-free in {{FUNC}}"),
                        _CALL_TRACE,
                        None,
                    ),
                    skip=_KASAN_SKIP,
                ),
            ),
            Format(
                _rx(r"BUG: KASAN: (?:double-free|invalid-free)"),
                "KASAN: invalid-free in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=_KASAN_SKIP),
            ),
            Format(
                _rx(r"BUG: KASAN: ([a-z\-]+) on address"),
                "KASAN: {kind} {rw}",
                report=_rx(
                    r"BUG: KASAN: (?P<kind>[a-z\-]+) on address(?:.*\n){0,12}?"
                    r".*(?P<rw>Read|Write) of size"
                ),
            ),
            Format(
                _rx(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}"),
                "KASAN: {kind} in {func}",
                report=_rx(r"BUG: KASAN: (?P<kind>[a-z\-]+) in "),
                stack=StackSpec(
                    parts=(_rx(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), _CALL_TRACE, None)
                ),
            ),
            Format(_rx(r"BUG: KASAN: (?P<what>.*)"), "KASAN: {what}", corrupted=True),
            Format(
                _rx(r"BUG: KFENCE: (?P<kind>[a-z\- ]+?) in {{FUNC}}"),
                "KFENCE: {kind} in {func}",
                stack=StackSpec(
                    parts=(_rx(r"BUG: KFENCE: (?:[a-z\- ]+?) in {{FUNC}}"),),
                    parts2=(_CALL_TRACE, None),
                ),
            ),
            Format(
                _rx(r"BUG: KMSAN: (?P<kind>[a-z\-]+)"),
                "KMSAN: {kind} in {func}",
                stack=StackSpec(
                    parts=(_rx(r"BUG: KMSAN: "), None),
                    skip=(
                        "usb_submit_urb",
                        "usb_start_wait_urb",
                        "usb_bulk_msg",
                        "usb_interrupt_msg",
                        "usb_control_msg",
                        "copy_to_user",
                        "copy_to_iter",
                        "^copyout",
                        "instrument_",
                    ),
                ),
            ),
            Format(_rx(r"BUG: KCSAN: (?P<what>.*)"), "KCSAN: {what}"),
            Format(
                _rx(
                    r"BUG: (?:unable to handle kernel paging request|unable to handle page "
                    r"fault for address|Unable to handle kernel data access)"
                ),
                "BUG: unable to handle kernel paging request in {func}",
                stack=_RIP_STACK,
            ),
            Format(
                _rx(
                    r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL "
                    r"pointer dereference|Kernel NULL pointer dereference)"
                ),
                "BUG: unable to handle kernel NULL pointer dereference in {func}",
                stack=_RIP_STACK,
            ),
            Format(
                _rx(r"BUG: (?:unable to handle kernel|Unable to handle kernel)"),
                "BUG: unable to handle kernel",
                corrupted=True,
            ),
            Format(
                _rx(
                    r"BUG: (?P<lk>spinlock|rwlock) (?P<what>lockup suspected|already unlocked|"
                    r"recursion|bad magic|wrong owner|wrong CPU|cpu recursion)"
                ),
                "BUG: {lk} {what} in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("spin_", "_lock", "rwlock")),
            ),
            Format(
                _rx(r"BUG: soft lockup"),
                "BUG: soft lockup in {func}",
                stack=StackSpec(
                    parts=(_RIP, _CALL_TRACE, None),
                    parts2=(_CALL_TRACE, None),
                    extractor=_stall_extractor,
                ),
            ),
            Format(
                _rx(r"BUG: .*still has locks held!"),
                "BUG: still has locks held in {func}",
                stack=StackSpec(parts=(_rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}"),)),
            ),
            Format(
                _rx(r"BUG: lock held when returning to user space"),
                "BUG: lock held when returning to user space in {func}",
                stack=StackSpec(parts=(_rx(r"leaving the kernel with locks still held"), _LOCK_AT)),
            ),
            Format(
                _rx(r"BUG: bad unlock balance detected!"),
                "BUG: bad unlock balance in {func}",
                stack=StackSpec(
                    parts=(_rx(r"is trying to release lock"), _rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}"))
                ),
            ),
            Format(
                _rx(r"BUG: held lock freed!"),
                "BUG: held lock freed in {func}",
                stack=StackSpec(parts=(_rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}"),)),
            ),
            Format(
                _rx(r"BUG: Invalid wait context"),
                "WARNING: locking bug in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("might_fault",)),
            ),
            Format(_rx(r"BUG: Bad rss-counter state"), "BUG: Bad rss-counter state"),
            Format(
                _rx(r"BUG: non-zero (?P<what>nr_ptes|nr_pmds|pgtables_bytes) on freeing mm"),
                "BUG: non-zero {what} on freeing mm",
            ),
            Format(
                _rx(r"BUG: Dentry .* still in use \(\d+\) \[(?P<what>unmount) of [^\]]+\]"),
                "BUG: Dentry still in use in {what}",
            ),
            Format(
                _rx(r"BUG: Bad page state"),
                "BUG: Bad page state in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=(
                        "^bad_page",
                        "^free_",
                        "^__free_",
                        "^page_frag",
                        "^check_",
                        "^__put_page",
                        "^put_page",
                        "^release_pages",
                        "^folio_put",
                        "^__folio_put",
                        "page_pool",
                        "^free_unref",
                        "^__page_frag",
                        "^skb_free_head",
                        "^skb_release_data",
                        "^__skb_",
                        "^kfree_skb",
                        "^consume_skb",
                        "^napi_consume_skb",
                        "^__kfree_skb",
                        "^xdp_return",
                        "^__xdp_return",
                        "^xdp_test_run_batch$|^prep_new_page",
                        "^get_page_from_freelist",
                        "^__alloc_pages",
                        "^alloc_pages",
                        "^__rmqueue",
                        "^rmqueue",
                        "^post_alloc_hook",
                        "^xdp_test_run_init_page",
                        "^page_pool_",
                        "^__page_pool",
                        "^destroy_",
                    ),
                ),
            ),
            Format(
                _rx(r"BUG: Bad page map"),
                "BUG: Bad page map in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=(
                        "^print_bad_pte",
                        "^zap_",
                        "^unmap_",
                        "^vm_normal_page",
                        "^__vm_normal_page",
                    ),
                ),
            ),
            Format(_rx(r"BUG: workqueue lockup"), "BUG: workqueue lockup"),
            Format(
                _rx(r"BUG: sleeping function called from invalid context"),
                "BUG: sleeping function called from invalid context in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("^__might_", "might_")),
            ),
            Format(
                _rx(r"BUG: scheduling while atomic"),
                "BUG: scheduling while atomic in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=("schedule", "^__switch_to", "^preempt_", "^context_switch"),
                ),
            ),
            Format(
                _rx(r"BUG: using (?P<what>[a-z_]+)\(\) in preemptible"),
                "BUG: using {what}() in preemptible code in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=("preemption", "preempt", "^debug_", "processor_id", "this_cpu"),
                ),
            ),
            Format(
                _rx(r"BUG: workqueue leaked lock or atomic"),
                "BUG: workqueue leaked lock or atomic in {what}",
                report=_rx(
                    r"BUG: workqueue leaked lock or atomic(?:.*\n)+?"
                    r".*last function: (?P<what>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                _rx(r"BUG: memory leak"),
                "memory leak in {func}",
                stack=StackSpec(
                    parts=(_rx(r"backtrace(?: \(crc [0-9a-f]+\))?:"), None),
                    skip=(
                        "kmemleak",
                        "kmalloc",
                        "kcalloc",
                        "kzalloc",
                        "vmalloc",
                        "mmap",
                        "kmem",
                        "slab",
                        "alloc",
                        "create_object",
                        "idr_get",
                        "list_lru_init",
                        "kasprintf",
                        "kvasprintf",
                        "pcpu_create",
                        "strdup",
                        "strndup",
                        "memdup",
                    ),
                ),
            ),
            Format(
                _rx(r"BUG: (?:TASK |IRQ )?stack guard page was hit at"),
                "BUG: stack guard page was hit in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=("stack_trace_save", "^arch_stack_walk"),
                    extractor=_stall_extractor,
                ),
            ),
            Format(
                _rx(r"BUG: (?:unable to handle|kernel) .*"),
                "BUG: unable to handle kernel",
                corrupted=True,
            ),
            Format(_rx(r"BUG:\s*(?:\n|$)"), "BUG: corrupted", corrupted=True),
        ),
        suppress=(
            _rx(r"ODEBUG:"),
            _rx(r"Boot_DEBUG:"),
            _rx(r"xlog_status:"),
            _rx(r"DEBUG:"),
            _rx(r"BUG: no syscalls can create resource"),
        ),
    ),
    Family(
        "WARNING:",
        (
            Format(
                _rx(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at 0x0)"),
                "WARNING: ODEBUG bug in {func}",
                stack=_warning_stack(
                    "debug_",
                    "rcu",
                    "hrtimer_",
                    "timer_",
                    "work_",
                    "percpu_",
                    "kmem_",
                    "slab_",
                    "kfree",
                    "vunmap",
                    "vfree",
                    "__free_",
                    "debug_check",
                    "kobject_",
                ),
            ),
            Format(
                _rx(r"WARNING: .*mm/usercopy\.c.* usercopy_warn"),
                "WARNING: bad usercopy in {func}",
                stack=_warning_stack("usercopy", "__check"),
            ),
            Format(
                _rx(r"WARNING: .*lib/kobject\.c.* kobject_"),
                "WARNING: kobject bug in {func}",
                stack=_warning_stack("kobject_"),
            ),
            Format(
                _rx(r"WARNING: .*fs/proc/generic\.c.* proc_register"),
                "WARNING: proc registration bug in {func}",
                stack=_warning_stack("proc_"),
            ),
            Format(
                _rx(r"WARNING: .*lib/refcount\.c.* refcount_"),
                "WARNING: refcount bug in {func}",
                stack=_warning_stack("refcount", "kobject_"),
            ),
            Format(
                _rx(r"WARNING: .*kernel/locking/lockdep\.c.*lock_"),
                "WARNING: locking bug in {func}",
                stack=_warning_stack("lock_sock", "release_sock"),
            ),
            Format(
                _rx(r"WARNING: lock held when returning to user space"),
                "WARNING: lock held when returning to user space in {func}",
                stack=StackSpec(parts=(_rx(r"leaving the kernel with locks still held"), _LOCK_AT)),
            ),
            Format(
                _rx(r"WARNING: .*mm/.*\.c.* k?.?malloc"),
                "WARNING: kmalloc bug in {func}",
                stack=_warning_stack(
                    "kmalloc", "kcalloc", "kzalloc", "krealloc", "vmalloc", "slab", "kmem"
                ),
            ),
            Format(
                _rx(r"WARNING: .*mm/vmalloc\.c.* __vmalloc_node_range"),
                "WARNING: zero-size vmalloc in {func}",
                stack=_warning_stack("vmalloc", "vzalloc", "kvmalloc", "kvzalloc"),
            ),
            Format(
                _rx(r"WARNING: .* usb_submit_urb"),
                "WARNING in {func}/usb_submit_urb",
                stack=_warning_stack(
                    "usb_submit_urb",
                    "usb_start_wait_urb",
                    "usb_bulk_msg",
                    "usb_interrupt_msg",
                    "usb_control_msg",
                ),
            ),
            Format(
                _rx(r"WARNING: .*kernel/locking/irqflag-debug\.c.* warn_bogus_irq_restore"),
                "WARNING in {func}",
                stack=_warning_stack("irq_restore", "irqrestore", "raw_local_irq", "bogus"),
            ),
            Format(
                _rx(r"WARNING: .* at {{SRC}} {{FUNC}}"),
                "WARNING in {func}",
                stack=_warning_stack(),
            ),
            Format(
                _rx(r"WARNING: (?:\[.*\] )?{{SRC}} at {{FUNC}}"),
                "WARNING in {func}",
                stack=_warning_stack(),
            ),
            Format(
                _rx(r"WARNING: possible circular locking dependency detected"),
                "possible deadlock in {func}",
                report=_rx(
                    r"WARNING: possible circular locking dependency detected"
                    r"(?:.*\n)+?.*is trying to acquire lock"
                ),
                stack=StackSpec(
                    parts=(_rx(r"is trying to acquire lock"), _LOCK_AT, _LOCK_AT, None),
                    skip=(
                        "process_one_work",
                        "flush_workqueue",
                        "drain_workqueue",
                        "destroy_workqueue",
                    ),
                ),
            ),
            Format(
                _rx(r"WARNING: possible irq lock inversion dependency detected"),
                "possible deadlock in {func}",
                stack=StackSpec(parts=(_rx(r"just changed the state of lock"), _LOCK_AT)),
            ),
            Format(
                _rx(r"WARNING: (?:SOFT|HARD)IRQ-safe -> (?:SOFT|HARD)IRQ-unsafe lock order"),
                "possible deadlock in {func}",
                stack=StackSpec(
                    parts=(_rx(r"which became (?:SOFT|HARD)IRQ-irq-safe at:"), None),
                    parts2=(_rx(r"is trying to acquire"), _LOCK_AT),
                ),
            ),
            Format(
                _rx(r"WARNING: possible recursive locking detected"),
                "possible deadlock in {func}",
                stack=StackSpec(parts=(_rx(r"is trying to acquire lock"), _LOCK_AT)),
            ),
            Format(
                _rx(r"WARNING: inconsistent lock state"),
                "inconsistent lock state in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), parts2=(_rx(r"takes"), _LOCK_AT)),
            ),
            Format(
                _rx(r"WARNING: suspicious RCU usage"),
                "WARNING: suspicious RCU usage in {func}",
                report=_rx(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}"),
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=(
                        "rcu",
                        "kmem",
                        "slab",
                        "kmalloc",
                        "vmalloc",
                        "kcalloc",
                        "kzalloc",
                        "lockdep",
                    ),
                ),
            ),
            Format(
                _rx(r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '(?P<reg>[^']+)'"),
                "WARNING: kernel stack regs has bad '{reg}' value",
            ),
            Format(
                _rx(r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value"),
                "WARNING: kernel stack frame pointer has bad value",
            ),
            Format(
                _rx(r"WARNING: bad unlock balance detected!"),
                "WARNING: bad unlock balance in {func}",
                stack=StackSpec(
                    parts=(_rx(r"is trying to release lock"), _rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}"))
                ),
            ),
            Format(
                _rx(r"WARNING: held lock freed!"),
                "WARNING: held lock freed in {func}",
                stack=StackSpec(parts=(_rx(r"at:(?: {{PC}})? +{{FUNC}}|{{PC}} +{{FUNC}}"),)),
            ),
            Format(
                _rx(r"WARNING: Nested lock was not taken"),
                "WARNING: nested lock was not taken in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None)),
            ),
            Format(
                _rx(r"WARNING: kernel stack (?:regs|frame pointer) .* has bad"),
                "WARNING: kernel stack regs has bad value",
            ),
            Format(_rx(r"WARNING:\s*(?:\n|$)"), "WARNING: corrupted", corrupted=True),
        ),
        suppress=(
            _rx(r"WARNING: /etc/ssh/moduli does not exist"),
            _rx(r"WARNING: workqueue cpumask: online intersect > possible intersect"),
            _rx(r"WARNING: [Tt]he mand mount option"),
            _rx(r"WARNING: fbcon: Driver"),
            _rx(r"(?i)uses wireless extensions"),
        ),
    ),
    Family(
        "INFO:",
        (
            Format(
                _rx(r"INFO: possible circular locking dependency detected"),
                "possible deadlock in {func}",
                report=_rx(
                    r"INFO: possible circular locking dependency detected(?:.*\n)+?"
                    r".*is trying to acquire lock(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                _rx(r"INFO: possible irq lock inversion dependency detected"),
                "possible deadlock in {func}",
                report=_rx(
                    r"INFO: possible irq lock inversion dependency detected(?:.*\n)+?"
                    r".*just changed the state of lock(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                _rx(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
                "possible deadlock in {func}",
                report=_rx(
                    r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected(?:.*\n)+?"
                    r".*is trying to acquire(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                _rx(r"INFO: possible recursive locking detected"),
                "possible deadlock in {func}",
                report=_rx(
                    r"INFO: possible recursive locking detected(?:.*\n)+?"
                    r".*is trying to acquire lock(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                _rx(r"INFO: inconsistent lock state"),
                "inconsistent lock state in {func}",
                report=_rx(
                    r"INFO: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                _rx(
                    r"INFO: rcu_(?:preempt|sched|bh|tasks\w*) (?:self-)?detected"
                    r"(?: expedited)? stall"
                ),
                "INFO: rcu detected stall in {func}",
                stack=StackSpec(
                    parts=(_STALL_IRQ, _RIP, None),
                    parts2=(_STALL_IRQ, None),
                    skip=("apic_timer_interrupt", "rcu"),
                    extractor=_stall_extractor,
                ),
            ),
            Format(
                _rx(r"INFO: trying to register non-static key"),
                "INFO: trying to register non-static key in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("stack", "lock", "IRQ")),
            ),
            Format(
                _rx(r"INFO: suspicious RCU usage"),
                "INFO: suspicious RCU usage in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=("rcu", "kmem", "slab", "kmalloc", "vmalloc", "kcalloc", "kzalloc"),
                ),
            ),
            Format(
                _rx(r"INFO: task .* blocked for more than \d+ seconds"),
                "INFO: task hung in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), extractor=_hang_extractor),
            ),
            Format(
                _rx(r"INFO: task .* can't die for more than .* seconds"),
                "INFO: task can't die in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("schedule",)),
            ),
            Format(
                _rx(r"INFO: (?P<what>Freed|Allocated) in (?P<where>.*)"),
                "INFO: {what} in {where}",
                corrupted=True,
            ),
            Format(_rx(r"INFO:\s*(?:\n|$)"), "INFO: corrupted", corrupted=True),
        ),
        suppress=(
            _rx(r"INFO: lockdep is turned off"),
            _rx(r"INFO: Stall ended before state dump start"),
            _rx(r"INFO: NMI handler"),
            _rx(r"INFO: recovery required on readonly filesystem"),
            _rx(r"(?:handler|interrupt).*took too long"),
            _rx(r"_INFO::"),
            _rx(r"INFO: sys_.* is not present in /proc/kallsyms"),
            _rx(r"INFO: no syscalls can create resource"),
            _rx(r"rcu: INFO: rcu_\w+ detected expedited stalls"),
        ),
    ),
    Family(
        "Unable to handle kernel",
        (
            Format(
                _rx(r"Unable to handle kernel NULL pointer dereference"),
                "BUG: unable to handle kernel NULL pointer dereference in {func}",
                stack=_RIP_STACK,
            ),
            Format(
                _rx(
                    r"Unable to handle kernel (?:paging request|access to user memory|"
                    r"write to read-only memory|execute from non-executable memory|"
                    r"execution of user memory)"
                ),
                "BUG: unable to handle kernel paging request in {func}",
                stack=_RIP_STACK,
            ),
        ),
    ),
    Family(
        "general protection fault",
        (
            Format(
                _rx(r"general protection fault.*:"),
                "general protection fault in {func}",
                stack=_RIP_STACK,
            ),
        ),
    ),
    Family(
        "stack segment: ",
        (Format(_rx(r"stack segment: "), "stack segment fault in {func}", stack=_RIP_STACK),),
    ),
    Family(
        "pagealloc: memory corruption",
        (
            Format(
                _rx(r"pagealloc: memory corruption"),
                "pagealloc: memory corruption in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None)),
            ),
        ),
    ),
    Family(
        "list_add corruption",
        (
            Format(
                _rx(r"list_add corruption"),
                "BUG: corrupted list in {func}",
                stack=_warning_stack(),
            ),
        ),
    ),
    Family(
        "list_del corruption",
        (
            Format(
                _rx(r"list_del corruption"),
                "BUG: corrupted list in {func}",
                stack=_warning_stack(),
            ),
        ),
    ),
    Family(
        "Kernel panic",
        (
            Format(
                _rx(
                    r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: "
                    r"{{FUNC}}"
                ),
                "kernel panic: stack is corrupted in {func}",
                stack=StackSpec(
                    parts=(_rx(r"Kernel stack is corrupted in: {{FUNC}}"),),
                    parts2=(_CALL_TRACE, None),
                    skip=("stack_chk",),
                ),
            ),
            Format(
                _rx(r"Kernel panic - not syncing: stack-protector:"),
                "kernel panic: stack is corrupted in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("stack_chk",)),
            ),
            Format(
                _rx(r"Kernel panic - not syncing: corrupted stack end"),
                "kernel panic: corrupted stack end in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=("schedule", "retint_kernel"),
                    extractor=_stall_extractor,
                ),
            ),
            Format(
                _rx(r"Kernel panic - not syncing: kernel stack overflow"),
                "kernel stack overflow in {func}",
                stack=StackSpec(
                    parts=(_CALL_TRACE, None),
                    skip=(
                        "handle_bad_stack",
                        "^bad_stack",
                        "^__bad_stack",
                        "^el1h_",
                        "^el1_",
                        "^__pi_",
                        "overflow",
                    ),
                    extractor=_stall_extractor,
                ),
            ),
            Format(
                _rx(r"Kernel panic - not syncing: Attempted to kill init!"),
                "kernel panic: Attempted to kill init!",
            ),
            Format(
                _rx(
                    r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error "
                    r"-\d+"
                ),
                "kernel panic: Couldn't open N_TTY ldisc",
            ),
            Format(
                _rx(r"Kernel panic - not syncing: Fatal exception"),
                "kernel panic: Fatal exception",
                corrupted=True,
            ),
            Format(
                _rx(r"Kernel panic - not syncing: panic_on_warn set"),
                "kernel panic: panic_on_warn set",
                corrupted=True,
            ),
            Format(
                _rx(r"Kernel panic - not syncing: hung_task: blocked tasks"),
                "kernel panic: hung_task: blocked tasks",
                corrupted=True,
            ),
            Format(_rx(r"Kernel panic - not syncing: (?P<msg>.*)"), "kernel panic: {msg}"),
        ),
    ),
    Family(
        "PANIC: double fault",
        (Format(_rx(r"PANIC: double fault"), "PANIC: double fault in {func}", stack=_RIP_ONLY),),
    ),
    Family(
        "kernel BUG",
        (
            Format(
                _rx(r"kernel BUG at mm/usercopy\.c"),
                "BUG: bad usercopy in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("usercopy", "__check")),
            ),
            Format(
                _rx(r"kernel BUG at lib/list_debug\.c"),
                "BUG: corrupted list in {func}",
                stack=_warning_stack(),
            ),
            Format(_rx(r"kernel BUG at "), "kernel BUG in {func}", stack=_warning_stack()),
            Format(_rx(r"kernel BUG"), "kernel BUG in {func}", stack=_warning_stack()),
        ),
    ),
    Family(
        "BUG kmalloc-",
        (Format(_rx(r"BUG kmalloc-.*: Object already free"), "BUG: Object already free"),),
    ),
    Family(
        "divide error:",
        (Format(_rx(r"divide error: "), "divide error in {func}", stack=_RIP_ONLY),),
    ),
    Family(
        "divide_error:",
        (Format(_rx(r"divide_error: "), "divide error in {func}", stack=_RIP_ONLY),),
    ),
    Family(
        "invalid opcode:",
        (Format(_rx(r"invalid opcode: "), "invalid opcode in {func}", stack=_RIP_ONLY),),
    ),
    Family(
        "Oops: int3",
        (Format(_rx(r"Oops: int3"), "int3 in {func}", stack=_RIP_ONLY),),
    ),
    Family(
        "UBSAN:",
        (
            Format(
                _rx(r"UBSAN: Undefined behaviour in"),
                "UBSAN: undefined-behaviour in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("ubsan", "overflow")),
            ),
            Format(
                _rx(r"UBSAN: (?P<kind>[a-z\-]+) in"),
                "UBSAN: {kind} in {func}",
                stack=StackSpec(parts=(_CALL_TRACE, None), skip=("ubsan", "overflow")),
            ),
        ),
    ),
    Family(
        "Watchdog detected hard LOCKUP",
        (
            Format(
                _rx(r"Watchdog detected hard LOCKUP"),
                "BUG: hard lockup in {func}",
                stack=StackSpec(
                    parts=(_RIP, _CALL_TRACE, None),
                    parts2=(_CALL_TRACE, None),
                    extractor=_stall_extractor,
                ),
            ),
        ),
    ),
    Family(
        "unregister_netdevice: waiting for",
        (
            Format(
                _rx(r"unregister_netdevice: waiting for (?:.*) to become free"),
                "unregister_netdevice: waiting for DEV to become free",
            ),
        ),
    ),
    Family(
        "Unhandled fault:",
        (
            Format(
                _rx(r"Unhandled fault:"),
                "Unhandled fault in {func}",
                stack=StackSpec(
                    parts=(_RIP,),
                    parts2=(_rx(r"Backtrace:|Call [Tt]race:"), None),
                ),
            ),
        ),
    ),
    Family(
        "Internal error:",
        (
            Format(
                _rx(r"Internal error: Oops - BUG"),
                "kernel BUG in {func}",
                stack=_RIP_STACK,
            ),
            Format(_rx(r"Internal error:"), "Internal error in {func}", stack=_RIP_STACK),
        ),
    ),
    Family(
        "VFS: Busy inodes after unmount",
        (
            Format(
                _rx(r"VFS: Busy inodes after unmount"),
                "VFS: Busy inodes after unmount (use-after-free)",
            ),
        ),
    ),
    Family(
        "trusty: panic",
        (
            Format(
                _rx(r"trusty: panic.* ASSERT FAILED"),
                "trusty: ASSERT FAILED: {what}",
                report=_rx(
                    r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): "
                    r"(?P<what>.+)"
                ),
            ),
            Format(
                _rx(r"trusty: panic.* ASSERT FAILED.*: *(?P<what>.*)"),
                "trusty: ASSERT FAILED: {what}",
                corrupted=True,
            ),
            Format(
                _rx(r"trusty: panic"),
                "trusty: panic: {what}",
                report=_rx(r"trusty: panic \(.*?\): (?P<what>.+)"),
            ),
        ),
    ),
    Family("SYZFAIL:", (Format(_rx(r"SYZFAIL:(?P<what>.*)"), "SYZFAIL:{what}"),)),
    Family("SYZFATAL:", (Format(_rx(r"SYZFATAL:(?P<what>.*)"), "SYZFATAL:{what}"),)),
    Family(
        "panic:",
        (Format(_rx(r"panic:(?P<what>.*)"), "panic:{what}"),),
        suppress=(
            _rx(r"_panic:"),
            _rx(r"xlog_status:"),
            _rx(r"ddb\.onpanic:"),
            _rx(r"evtlog_status:"),
            _rx(r"Kernel panic"),
        ),
    ),
    Family(
        "fatal error:",
        (Format(_rx(r"fatal error:"), "go runtime error"),),
        suppress=(_rx(r"ALSA"), _rx(r"fatal error: cannot create timer")),
    ),
)

# A start line of these kinds continues the report that is already open (the panic
# after an oops, the arm64 `Internal error:` after `Unable to handle ...`, ...).
_CONTINUATIONS = re.compile(
    r"invalid opcode: 0000|Kernel panic - not syncing|unregister_netdevice: waiting for"
    r"|PANIC: double fault|Internal error:|kernel BUG at lib/list_debug\.c"
    r"|WARNING: .* at lib/list_debug\.c|WARNING: lib/list_debug\.c"
    r"|Oops: general protection fault|trusty: panic|fatal error:"
)
# Info messages with a stack trace: they cut a report short but are no crash themselves.
_INFO_WITH_STACK = (
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
)
_CORRUPTED_TITLE = re.compile(r"\[ *\d+\.\d+\]")
_MAX_REPORT_LINES = 1000
# Bounds for what one file and one report may hold in memory (far above a real console
# log's lines of < 1 KiB and reports of a few KiB).
MAX_LOG_BYTES = 512 << 20
MAX_LINE_BYTES = 64 << 10
MAX_REPORT_BYTES = 1 << 20

# --------------------------------------------------------------------------------------
# Line prefixes
# --------------------------------------------------------------------------------------

# A shell prompt and terminal escapes (busybox asks for the cursor position) can stand
# before a kernel line on a serial console.
_PREFIX_RE = re.compile(
    r"^(?:[\w@:~/.-]*[#$] ?)?(?:\x1b\[[0-9;?]*[A-Za-z])*"
    r"(?:\*\* \d+ printk messages dropped \*\* )?(?:.* login: )?(?:<\d+>)?"
    r"\[ *\d+\.\d+\](?:\[ *([CT]\d+)\])? ?"
)
_QUESTIONABLE = re.compile(r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)?\? ")
_CONSOLE = "console"


def _split(line: str) -> tuple[str, str]:
    """(context, kernel text) of one raw line; context "" means no console prefix."""
    if line.endswith("\r"):
        line = line[:-1]
    if "[" not in line:
        return "", line
    m = _PREFIX_RE.match(line)
    if m is None:
        return "", line
    return (m.group(1) or _CONSOLE), line[m.end() :]


# --------------------------------------------------------------------------------------
# Title helpers
# --------------------------------------------------------------------------------------

_TITLE_REPLACEMENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"syz-executor\.?\d+(?:[/:]\d+)?"), "syz-executor"),
    (re.compile(r"syzkaller\d+(?:[/:]\d+)?"), "syzkaller"),
    (re.compile(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), r"\1ADDR"),
    (re.compile(r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})"), "IP"),
    (re.compile(r"(\.\w+)(:\d+)+"), r"\1:LINE"),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"), r"\1"),
    (re.compile(r"CPU#\d+"), "CPU"),
)
_NUM_RE = re.compile(r"(\W)(\d+)(\W|$)")
_LONG_NUM_RE = re.compile(r"\d{7,}")


def _sanitize_title(title: str) -> str:
    for rx, repl in _TITLE_REPLACEMENTS:
        title = rx.sub(repl, title)
    while True:
        new = _NUM_RE.sub(r"\1NUM\3", title)
        if new == title:
            break
        title = new
    title = _LONG_NUM_RE.sub("NUM", title)
    out: list[str] = []
    prev = " "
    for ch in title[:120]:
        if ch == "\t":
            ch = " "
        elif ord(ch) < 0x20 or ord(ch) >= 0x7F:
            continue
        if ch == " " and prev == " ":
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


_TYPE_TABLE: tuple[tuple[str, str], ...] = (
    (r"KFENCE: use-after-free write", "KFENCE-USE-AFTER-FREE-WRITE"),
    (r"KFENCE: use-after-free", "KFENCE-USE-AFTER-FREE-READ"),
    (r"KFENCE: (?:invalid|out-of-bounds) write", "KFENCE-WRITE"),
    (r"KFENCE: (?:invalid read|out-of-bounds)", "KFENCE-READ"),
    (r"KFENCE: memory corruption", "KFENCE-MEMORY-CORRUPTION"),
    (r"KFENCE: invalid free", "KFENCE-INVALID-FREE"),
    (r"KFENCE:", "KFENCE-UNKNOWN"),
    (r"KMSAN: uninit-value", "KMSAN-UNINIT-VALUE"),
    (r"KMSAN: (?:kernel-(?:usb-)?infoleak-after-free|use-after-free)", "KMSAN-USE-AFTER-FREE-READ"),
    (r"KMSAN: kernel-(?:usb-)?infoleak", "KMSAN-INFO-LEAK"),
    (r"KMSAN:", "KMSAN-UNKNOWN"),
    (r"KASAN: null-ptr-deref Write", "KASAN-NULL-POINTER-DEREFERENCE-WRITE"),
    (r"KASAN: null-ptr-deref", "KASAN-NULL-POINTER-DEREFERENCE-READ"),
    (r"KASAN: (?:double-free|invalid-free)", "KASAN-INVALID-FREE"),
    (r"KASAN: (?:slab-)?use-after-free Write", "KASAN-USE-AFTER-FREE-WRITE"),
    (r"KASAN: (?:slab-)?use-after-free", "KASAN-USE-AFTER-FREE-READ"),
    (r"KASAN: [\w-]+ Write", "KASAN-WRITE"),
    (r"KASAN: [\w-]+ Read|KASAN: [\w-]*(?:out-of-bounds|memory-access)", "KASAN-READ"),
    (r"KASAN:", "KASAN-UNKNOWN"),
    (r"KCSAN: data-race", "KCSAN-DATARACE"),
    (r"KCSAN: assert", "KCSAN-ASSERT"),
    (r"KCSAN:", "KCSAN-UNKNOWN"),
    (r"BUG: unable to handle kernel NULL pointer dereference", "NULL-POINTER-DEREFERENCE"),
    (r"BUG: corrupted list|BUG: unable to handle kernel paging request", "MEMORY-SAFETY-BUG"),
    (
        r"pagealloc: memory corruption|BUG: Bad page (?:state|map)|BUG: Bad rss-counter",
        "MEMORY-CORRUPTION",
    ),
    (r"WARNING: refcount bug", "REFCOUNT-WARNING"),
    (r"UBSAN: array-index-out-of-bounds", "MEMORY-SAFETY-UBSAN"),
    (
        r"BUG: (?:bad unlock balance|held lock freed|rwlock|spinlock|still has locks held|using)"
        r"|WARNING: (?:bad unlock balance|held lock freed|lock held|locking bug|nested lock"
        r"|still has locks held|suspicious RCU usage)|inconsistent lock state|possible deadlock",
        "LOCKDEP",
    ),
    (
        r"BUG: (?:scheduling while atomic|sleeping function called from invalid context)",
        "ATOMIC-SLEEP",
    ),
    (r"memory leak in", "LEAK"),
    (r"BUG: bad usercopy|kernel BUG", "BUG"),
    (r"WARNING in", "WARNING"),
    (r"BUG: stack guard page|WARNING: corrupted|WARNING: kernel stack", "UNKNOWN"),
    (r"BUG: (?:soft|hard) lockup|INFO: rcu detected stall|INFO: task (?:can't die|hung)", "HANG"),
    (
        r"Alignment trap|BUG: Object already free|Internal error|PANIC: double fault"
        r"|Unhandled fault|VFS: Busy inodes|divide error|general protection fault"
        r"|go runtime error|invalid opcode|int3 in|kernel panic:|kernel stack overflow|panic:"
        r"|stack segment fault|trusty:|unregister_netdevice",
        "DOS",
    ),
    (r"SYZFAIL|SYZFATAL", "SYZ-FAILURE"),
    (r"WARNING:", "WARNING"),
    (r"UBSAN:", "UBSAN"),
)
_TYPE_RES = tuple((re.compile(p), t) for p, t in _TYPE_TABLE)


def _title_type(title: str) -> str:
    for rx, typ in _TYPE_RES:
        if rx.match(title):
            return typ
    return "UNKNOWN"


# --------------------------------------------------------------------------------------
# Stack walking
# --------------------------------------------------------------------------------------


def _frame_of(line: str) -> str | None:
    for rx in _FRAME_RES:
        m = rx.match(line)
        if m:
            return m.group(1)
    return None


_STACK_START_RE = re.compile("|".join(f"(?:{rx.pattern})" for rx in _STACK_STARTS))


def _is_stack_start(line: str) -> bool:
    return (
        "race" in line or "Allocated" in line or "Freed" in line or "Last potentially" in line
    ) and _STACK_START_RE.search(line) is not None


_MANGLED = re.compile(r"^_Z(\d+)")


def _demangle(name: str) -> str:
    """The bare name of an Itanium-mangled C++ symbol (_Z8fakeNameiii -> fakeName)."""
    m = _MANGLED.match(name)
    if m is None:
        return name
    n = int(m.group(1))
    return name[m.end() : m.end() + n] or name


def _capture(m: re.Match[str], skip: Callable[[str], bool]) -> str | None:
    for g in m.groups():
        if g is not None:
            g = _demangle(g)
            if not skip(g):
                return g
    return None


_ARM32_REGS = re.compile(r"^\s*r\d+\s*:")


def _walk(
    lines: Sequence[str],
    parts: Sequence[re.Pattern[str] | None],
    skip: Callable[[str], bool],
) -> list[str]:
    frames: list[str] = []
    pos = 0
    idx = 0
    arm32_chain = False
    while idx < len(parts):
        part = parts[idx]
        if part is None:
            nxt = parts[idx + 1] if idx + 1 < len(parts) else None
            while pos < len(lines):
                ln = lines[pos]
                pos += 1
                if _is_stack_start(ln):
                    break
                if nxt is not None:
                    m = nxt.search(ln)
                    if m:
                        got = _capture(m, skip)
                        if got:
                            frames.append(got)
                        idx += 1
                        break
                caller = _ARM32_CALLER.search(ln)
                if caller is not None:
                    # arm32 `(callee) from (caller)`: the callee only starts the chain,
                    # after that each caller is the next frame (tail calls differ).
                    names = [caller.group(1)]
                    if not arm32_chain:
                        names.insert(0, _frame_of(ln) or "")
                    arm32_chain = True
                    for fr in names:
                        if fr and not skip(fr := _demangle(fr)):
                            frames.append(fr)
                    continue
                if not _ARM32_REGS.match(ln):
                    arm32_chain = False
                fr = _frame_of(ln)
                if fr is not None and not skip(fr := _demangle(fr)):
                    frames.append(fr)
        else:
            while pos < len(lines):
                ln = lines[pos]
                pos += 1
                m = part.search(ln)
                if m:
                    got = _capture(m, skip)
                    if got:
                        frames.append(got)
                    break
        idx += 1
    return frames


def _extract_frame(lines: Sequence[str], spec: StackSpec) -> str | None:
    if spec.skip:
        extra = re.compile("|".join(f"(?:{s})" for s in spec.skip))

        def skip(name: str) -> bool:
            return bool(_SKIP_RE.search(name) or extra.search(name))
    else:

        def skip(name: str) -> bool:
            return bool(_SKIP_RE.search(name))

    for parts in (spec.parts, spec.parts2):
        if not parts:
            continue
        frames = _walk(lines, parts, skip)
        if frames:
            extractor = spec.extractor
            return extractor(frames) if extractor else frames[0]
    return None


# --------------------------------------------------------------------------------------
# Report assembly
# --------------------------------------------------------------------------------------

_CPU_LINE = re.compile(
    r"CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.*?) "
    r"(?:Not tainted|Tainted: (?P<taint>[A-Z](?:[A-Z ]*[A-Z])?))"
)
_WARN_OLD = re.compile(r"WARNING: CPU: (\d+) PID: (\d+) at ([\w/.-]+\.[a-zA-Z]+):\d+")
_WARN_NEW = re.compile(r"WARNING: ([\w/.-]+\.[a-zA-Z]+):\d+ at [^,]*, CPU#(\d+): (.*)/(\d+)")
_KERNEL_BUG_AT = re.compile(r"kernel BUG at ([\w/.-]+\.[a-zA-Z]+):\d+")
_FILE_RE = re.compile(r"(?:^|(?<=[\s(\[]))([\w/-][\w./-]*\.[ch]):\d+")
_GUILTY_FILE_IGNORES = re.compile(
    r".*\.h$|^lib/|^virt/lib/|^mm/kasan/|^mm/kmsan/|^kernel/kcov\.c|^mm/sl.b\.c|^mm/memory\.c"
    r"|^mm/percpu|^mm/vmalloc\.c|^mm/page_alloc\.c|^mm/util\.c|^kernel/rcu/"
    r"|^arch/.*/kernel/traps\.c|^arch/.*/mm/fault\.c|^kernel/locking/|^kernel/panic\.c"
    r"|^kernel/printk/|^kernel/softirq\.c|^kernel/kthread\.c|^kernel/sched/"
    r"|^kernel/time/timer\.c|^kernel/workqueue\.c"
)


def _guess_arch(lines: Sequence[str]) -> str | None:
    """The arch whose log markers (arches.Arch.log_line_*) the first telling line shows."""
    for ln in lines:
        for arch in ARCHES.values():
            if arch.marks_log_line(ln):
                return arch.name
    return None


class _Line(NamedTuple):
    ctx: str
    text: str
    questionable: bool


class _Log:
    """Lazily split lines of one log."""

    def __init__(self, text: str) -> None:
        self.raw = text.split("\n")
        self._cache: dict[int, _Line] = {}

    def __len__(self) -> int:
        return len(self.raw)

    def get(self, i: int) -> _Line:
        got = self._cache.get(i)
        if got is None:
            ctx, body = _split(self.raw[i])
            q = (
                ctx != ""
                and body[:1] in (" ", "\t", "[")
                and "<EOI>" not in body
                and bool(_QUESTIONABLE.match(body))
            )
            got = _Line(ctx, body, q)
            self._cache[i] = got
        return got


def _header_at_word(line: str, header: str) -> bool:
    """`header` occurs in `line` not glued to a preceding word (BTF_INFO: is no INFO:)."""
    pos = line.find(header)
    while pos >= 0:
        if pos == 0 or not (line[pos - 1].isalnum() or line[pos - 1] == "_"):
            return True
        pos = line.find(header, pos + 1)
    return False


def _family_of(line: str) -> Family | None:
    for fam in FAMILIES:
        if (
            fam.header in line
            and _header_at_word(line, fam.header)
            and not any(s.search(line) for s in fam.suppress)
        ):
            return fam
    return None


def _describe(text: str, lines: list[str], fam: Family) -> tuple[str, bool, str | None] | None:
    """(title, corrupted, guilty function) of report text, or None if no format matched."""
    best: tuple[str, bool, str | None] | None = None
    best_pos = len(text) + 1
    matched = False
    for fmt in fam.formats:
        m = fmt.title.search(text)
        if m is None or m.start() > best_pos:
            continue
        if m.start() == best_pos and best is not None:
            continue
        if m.start() < best_pos:
            best = None
            best_pos = m.start()
        matched = True
        groups: dict[str, str] = {k: v or "" for k, v in m.groupdict().items()}
        if fmt.report is not None:
            rm = fmt.report.search(text)
            if rm is None:
                continue
            groups.update({k: v or "" for k, v in rm.groupdict().items()})
        corrupted = fmt.corrupted
        func: str | None = None
        if fmt.stack is not None:
            # Start the stack walk at the title line.
            first = text.count("\n", 0, m.start())
            func = _extract_frame(lines[first:], fmt.stack)
            if func is None:
                corrupted = True
            groups["func"] = func or "corrupted"
        try:
            title = fmt.fmt.format_map(groups)
        except KeyError:
            continue
        best = (title, corrupted, func)
    if best is None and matched:
        return None
    return best


def _fallback_title(text: str, fam: Family) -> str:
    pos = text.find(fam.header)
    if pos < 0:
        return fam.header
    end = text.find("\n", pos)
    return text[pos : end if end >= 0 else len(text)]


def _collect(
    log: _Log, start: int, end: int, title_end: int, ctx: str
) -> tuple[list[str], int, list[str]]:
    """Lines of one report: (lines for the title up to `title_end`, how many of those lie
    before `end`, all own-context lines before `end` including unreliable frames)."""
    kept: list[str] = []
    own: list[str] = []
    n_kept = 0
    skip_rest = False
    cpu_traceback = False
    # Cheap pre-check for caller-tagged logs: a line of this task names its tag.
    probe = ctx + "]" if ctx not in ("", _CONSOLE) else ""
    raw = log.raw
    for i in range(start, max(end, title_end)):
        if i == end:
            n_kept = len(kept)
        if probe and not cpu_traceback and i != start and probe not in raw[i]:
            continue
        ln = log.get(i)
        if i != start and ln.ctx != ctx and not (cpu_traceback and ln.ctx.startswith("C")):
            continue
        if i < end:
            own.append(ln.text)
        if i != start and ln.questionable:
            continue
        body = ln.text
        if "Disabling lock debugging due to kernel taint" in body:
            continue
        if "Sending NMI from CPU" in body:
            cpu_traceback = True
        elif len(kept) > 22 and (
            "Kernel panic - not syncing" in body
            or "WARNING: possible circular locking dependency detected" in body
        ):
            skip_rest = True
        if skip_rest and i != start:
            continue
        kept.append(body)
    if title_end <= end:
        n_kept = len(kept)
    return kept, n_kept, own


def _frames_of(lines: Sequence[str]) -> list[str]:
    out: list[str] = []
    in_trace = False
    for ln in lines:
        if _is_stack_start(ln):
            in_trace = True
            continue
        if not in_trace:
            continue
        fr = _frame_of(ln)
        if fr is not None:
            out.append(fr)
    return out


def _build_report(
    log: _Log, start: int, end: int, title_end: int, fam: Family, arch: str | None
) -> Report:
    first = log.get(start)
    ctx = first.ctx
    title_lines, n_kept, own = _collect(log, start, end, title_end, ctx)
    kept = title_lines[:n_kept]
    text = "\n".join(title_lines)
    described = _describe(text, title_lines, fam)
    if described is None:
        raw_text = "\n".join(log.get(i).text for i in range(start, end))
        described = _describe(raw_text, raw_text.split("\n"), fam)
    if described is None:
        title, corrupted, func = _fallback_title(text, fam), True, None
    else:
        title, corrupted, func = described
    title = _sanitize_title(title)
    if _CORRUPTED_TITLE.search(title) or title.endswith(" in corrupted"):
        corrupted = True
    frames = _frames_of(kept)
    if func is None:
        func = next((f for f in frames if not _SKIP_RE.search(f)), None)
    cpu = pid = None
    comm = taint = None
    guilty_file = None
    for ln in kept[:60]:
        m = _CPU_LINE.search(ln)
        if m:
            cpu, pid, comm = int(m["cpu"]), int(m["pid"]), m["comm"]
            taint = m["taint"]
            break
    head = first.text
    if (wm := _WARN_OLD.search(head)) is not None:
        cpu = cpu if cpu is not None else int(wm.group(1))
        pid = pid if pid is not None else int(wm.group(2))
        guilty_file = wm.group(3)
    elif (wm := _WARN_NEW.search(head)) is not None:
        guilty_file = wm.group(1)
        cpu = cpu if cpu is not None else int(wm.group(2))
        comm = comm if comm is not None else wm.group(3)
        pid = pid if pid is not None else int(wm.group(4))
    elif (km := _KERNEL_BUG_AT.search(head)) is not None:
        guilty_file = km.group(1)
    if guilty_file is None:
        files = [
            f.group(1) for ln in kept if ".c:" in ln or ".h:" in ln for f in _FILE_RE.finditer(ln)
        ]
        guilty_file = next((f for f in files if not _GUILTY_FILE_IGNORES.match(f)), None)
        if guilty_file is None and files:
            guilty_file = files[0]
    return Report(
        title=title,
        type=_title_type(title),
        arch=arch or _guess_arch(kept) or _guess_arch(own),
        guilty_function=func,
        guilty_file=guilty_file,
        frames=tuple(frames),
        cpu=cpu,
        pid=pid,
        comm=comm,
        taint=taint,
        corrupted=corrupted,
        lines=_capped(own, MAX_REPORT_BYTES),
        start_line=start,
    )


def _capped(lines: Sequence[str], budget: int) -> tuple[str, ...]:
    """The report's lines up to `budget` characters in all (the rest is in the log)."""
    kept: list[str] = []
    for line in lines:
        if len(line) > budget:
            kept.append(line[:budget])
            break
        kept.append(line)
        budget -= len(line)
    return tuple(kept)


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------

_EVENT_KEYS = (
    "Killed process",
    "Kill process",
    "oom-kill:",
    "oom_reaper:",
    "Linux version ",
    "Tainted: ",
    "tainting kernel",
    "pagealloc: memory corruption",
)
_KILLED = re.compile(
    r"(?:Out of memory(?: \(oom_kill_allocating_task\))?: |Memory cgroup out of memory: )?"
    r"Kill(?:ed)? process (?P<pid>\d+) \((?P<comm>[^)]*)\)(?P<rest>.*)"
)
_KV = re.compile(r"([\w-]+)[:=]([^,\s]+)")
_REAPED = re.compile(r"oom_reaper: reaped process (?P<pid>\d+) \((?P<comm>[^)]*)\),?(?P<rest>.*)")
_BANNER = re.compile(r"^Linux version (\S+)")
_TAINTING = re.compile(r"(?P<what>.*?):? ?tainting kernel")


def _events(log: _Log, hits: list[int]) -> list[Event]:
    events: list[Event] = []
    pending: Event | None = None  # the oom_kill event of the last oom-kill: line
    banners = 0
    taint = ""
    for i in hits:
        body = log.get(i).text
        if "oom-kill:" in body:
            fields = dict(_KV.findall(body[body.index("oom-kill:") + 9 :]))
            if "task" in fields:
                fields["comm"] = fields["task"]
            pending = Event("oom_kill", i, fields)
            events.append(pending)
            continue
        if ("Killed process" in body or "Kill process" in body) and (m := _KILLED.search(body)):
            fields = {"pid": m["pid"], "comm": m["comm"]}
            fields.update(_KV.findall(m["rest"]))
            if m["rest"].strip().startswith("score"):
                fields["score"] = m["rest"].split()[1]
            if pending is not None and pending.fields.get("pid", m["pid"]) == m["pid"]:
                pending.fields.update(fields)
                pending = None
            else:
                events.append(Event("oom_kill", i, fields))
            continue
        if "oom_reaper:" in body and (m := _REAPED.search(body)):
            fields = {"pid": m["pid"], "comm": m["comm"]}
            fields.update(_KV.findall(m["rest"]))
            events.append(Event("oom_reaped", i, fields))
            continue
        if body.startswith("Linux version ") and (m := _BANNER.match(body)):
            banners += 1
            events.append(
                Event("boot_banner" if banners == 1 else "reboot", i, {"version": m.group(1)})
            )
            taint = ""
            continue
        if "pagealloc: memory corruption" in body:
            fields = {}
            nxt = log.get(i + 1).text if i + 1 < len(log) else ""
            if (am := re.match(r"\s*([0-9a-f]{8,16}):", nxt)) is not None:
                fields["address"] = am.group(1)
            events.append(Event("page_poison_corruption", i, fields))
            continue
        if "tainting kernel" in body and (m := _TAINTING.search(body)):
            events.append(Event("taint", i, {"reason": m["what"].strip()}))
            continue
        if "Tainted: " in body and (cm := _CPU_LINE.search(body)) and cm["taint"]:
            flags = cm["taint"]
            if flags != taint:
                taint = flags
                events.append(
                    Event("taint", i, {"flags": flags, "pid": cm["pid"], "comm": cm["comm"]})
                )
    return events


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------

_PREFILTER = re.compile(
    "|".join(
        re.escape(k)
        for k in sorted(
            {f.header for f in FAMILIES} | set(_EVENT_KEYS) | set(_INFO_WITH_STACK),
            key=lambda k: (-len(k), k),
        )
    )
)
_STOPPER = re.compile("|".join(re.escape(k) for k in (*_INFO_WITH_STACK, "Linux version ")))
_EVENT_HINT = re.compile("|".join(re.escape(k) for k in _EVENT_KEYS))


def parse(text: str, arch: str | None = None) -> LogAnalysis:
    """Find every crash report and notable event in a console log."""
    log = _Log(text)
    offsets = [0, *accumulate(len(r) + 1 for r in log.raw)]
    hit_lines: list[int] = []
    last = -1
    for m in _PREFILTER.finditer(text):
        i = bisect.bisect_right(offsets, m.start()) - 1
        if i != last:
            hit_lines.append(i)
            last = i
    starts: list[tuple[int, Family]] = []
    event_lines: list[int] = []
    stoppers: list[int] = []  # boot banners and info messages with a stack end a report
    for i in hit_lines:
        raw = log.raw[i]
        fam = _family_of(raw)
        if fam is not None:
            starts.append((i, fam))
        if _EVENT_HINT.search(raw):
            event_lines.append(i)
        if _STOPPER.search(raw):
            stoppers.append(i)
    banners = [i for i in stoppers if _BANNER.match(log.get(i).text)]

    reports: list[Report] = []
    open_until = -1  # a continuation line before this index belongs to the open report
    for n, (start, fam) in enumerate(starts):
        if start < open_until and _CONTINUATIONS.search(log.get(start).text):
            continue
        ctx = log.get(start).ctx
        tagged = ctx not in ("", _CONSOLE)
        limit = min(len(log), start + _MAX_REPORT_LINES)
        # A new boot banner ends every report (the machine rebooted).
        k = bisect.bisect_right(banners, start)
        if k < len(banners):
            limit = min(limit, banners[k])
        end = limit
        for nxt, _fam in starts[n + 1 :]:
            if nxt >= end:
                break
            line = log.get(nxt)
            if tagged and line.ctx != ctx:
                continue
            if _CONTINUATIONS.search(line.text):
                continue
            end = nxt
            break
        k = bisect.bisect_right(stoppers, start)
        if k < len(stoppers) and stoppers[k] < end:
            end = stoppers[k]
        # With caller tags the task's own lines stay apart from other reports, so the
        # title may look past a later report of the same task (as syzkaller does).
        title_end = limit if tagged else end
        reports.append(_build_report(log, start, end, title_end, fam, arch))
        open_until = end
    return LogAnalysis(reports=reports, events=_events(log, event_lines))


def parse_file(path: str | Path) -> LogAnalysis:
    """Parse a console log file; UsageError if it is missing, unreadable, not a regular
    file (a FIFO would block, /dev/zero never ends) or over MAX_LOG_BYTES."""
    p = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise UsageError(f"console log {p}: no such file") from None
    except OSError as exc:
        raise UsageError(f"console log {p}: cannot read it ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise UsageError(f"console log {p}: is a directory, not a file")
        raise UsageError(f"console log {p}: not a regular file (a FIFO, socket or device); "
                         "save the log to a file and parse that")
    with os.fdopen(fd, "rb") as f:
        try:
            return parse(_read_bounded(f, p))
        except OSError as exc:
            raise UsageError(f"console log {p}: cannot read it ({exc.strerror or exc})") from None


def _read_bounded(f: IO[bytes], path: Path) -> str:
    """The file's text line by line: each line cut at MAX_LINE_BYTES, the whole refused
    past MAX_LOG_BYTES. Decoding per line gives the same text as decoding the whole, as
    a UTF-8 sequence never holds a newline byte."""
    parts: list[str] = []
    total = 0

    def count(n: int) -> None:
        nonlocal total
        total += n
        if total > MAX_LOG_BYTES:
            raise UsageError(f"console log {path}: larger than {MAX_LOG_BYTES >> 20} MiB; "
                             f"parse a part of it (tail -c {MAX_LOG_BYTES >> 21}M FILE > PART)")

    while line := f.readline(MAX_LINE_BYTES):
        count(len(line))
        if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
            line += b"\n"  # an overlong line: its rest is skipped (but counted)
            while rest := f.readline(MAX_LINE_BYTES):
                count(len(rest))
                if rest.endswith(b"\n"):
                    break
        parts.append(line.decode("utf-8", errors="replace"))
    return "".join(parts)


def _summary(analysis: LogAnalysis, path: str) -> str:
    out: list[str] = []
    if not analysis.reports:
        out.append(f"{path}: no crash found")
    else:
        out.append(f"{path}: {len(analysis.reports)} crash report(s)")
        for r in analysis.reports:
            extra = " [corrupted]" if r.corrupted else ""
            out.append(f"  line {r.start_line + 1}: {r.title} ({r.type}){extra}")
            where = ", ".join(
                s
                for s in (
                    f"arch {r.arch}" if r.arch else "",
                    f"cpu {r.cpu}" if r.cpu is not None else "",
                    f"pid {r.pid}" if r.pid is not None else "",
                    f"comm {r.comm}" if r.comm else "",
                    f"taint {r.taint!r}" if r.taint else "",
                    f"file {r.guilty_file}" if r.guilty_file else "",
                )
                if s
            )
            if where:
                out.append(f"    {where}")
    counts: dict[str, int] = {}
    for e in analysis.events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    if counts:
        out.append("events: " + ", ".join(f"{k} x{v}" for k, v in counts.items()))
    return "\n".join(out)


def parse_log_main(path: str, as_json: bool) -> int:
    """`oomrace parse-log FILE [--json]`: 0 no crash, 1 crash found, 2 error."""
    try:
        analysis = parse_file(path)
    except UsageError as exc:
        print(f"oomrace parse-log: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(versioned(analysis.to_dict()), indent=2))
    else:
        print(_summary(analysis, path))
    return 1 if analysis.reports else 0
