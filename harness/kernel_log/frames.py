"""Guilty-frame selection: walk a report's stack the way its family's `StackSpec` says,
skip the generic helpers, and name the function (and source file) to blame.

Each heuristic carries its why; the families choose among them (stall and hang reports
have their own extractors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .spec import ARM32_CALLER, FRAME_RES, STACK_STARTS, StackSpec

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
SKIP_RE = re.compile("|".join(f"(?:{p})" for p in SKIP_FRAMES))


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


def stall_extractor(frames: list[str]) -> str | None:
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


def hang_extractor(frames: list[str]) -> str | None:
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


def frame_of(line: str) -> str | None:
    for rx in FRAME_RES:
        m = rx.match(line)
        if m:
            return m.group(1)
    return None


_STACK_START_RE = re.compile("|".join(f"(?:{rx.pattern})" for rx in STACK_STARTS))


def is_stack_start(line: str) -> bool:
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
                if is_stack_start(ln):
                    break
                if nxt is not None:
                    m = nxt.search(ln)
                    if m:
                        got = _capture(m, skip)
                        if got:
                            frames.append(got)
                        idx += 1
                        break
                caller = ARM32_CALLER.search(ln)
                if caller is not None:
                    # arm32 `(callee) from (caller)`: the callee only starts the chain,
                    # after that each caller is the next frame (tail calls differ).
                    names = [caller.group(1)]
                    if not arm32_chain:
                        names.insert(0, frame_of(ln) or "")
                    arm32_chain = True
                    for fr in names:
                        if fr and not skip(fr := _demangle(fr)):
                            frames.append(fr)
                    continue
                if not _ARM32_REGS.match(ln):
                    arm32_chain = False
                fr = frame_of(ln)
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


def extract_frame(lines: Sequence[str], spec: StackSpec) -> str | None:
    if spec.skip:
        extra = re.compile("|".join(f"(?:{s})" for s in spec.skip))

        def skip(name: str) -> bool:
            return bool(SKIP_RE.search(name) or extra.search(name))
    else:

        def skip(name: str) -> bool:
            return bool(SKIP_RE.search(name))

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


def frames_of(lines: Sequence[str]) -> list[str]:
    out: list[str] = []
    in_trace = False
    for ln in lines:
        if is_stack_start(ln):
            in_trace = True
            continue
        if not in_trace:
            continue
        fr = frame_of(ln)
        if fr is not None:
            out.append(fr)
    return out


# A source file named in the report: the first one outside the generic helpers is
# blamed (headers, lib/, the sanitizers, the allocators and the fault and locking
# machinery only report or pass a bug through).
_FILE_RE = re.compile(r"(?:^|(?<=[\s(\[]))([\w/-][\w./-]*\.[ch]):\d+")
_GUILTY_FILE_IGNORES = re.compile(
    r".*\.h$|^lib/|^virt/lib/|^mm/kasan/|^mm/kmsan/|^kernel/kcov\.c|^mm/sl.b\.c|^mm/memory\.c"
    r"|^mm/percpu|^mm/vmalloc\.c|^mm/page_alloc\.c|^mm/util\.c|^kernel/rcu/"
    r"|^arch/.*/kernel/traps\.c|^arch/.*/mm/fault\.c|^kernel/locking/|^kernel/panic\.c"
    r"|^kernel/printk/|^kernel/softirq\.c|^kernel/kthread\.c|^kernel/sched/"
    r"|^kernel/time/timer\.c|^kernel/workqueue\.c"
)


def guilty_file(lines: Sequence[str]) -> str | None:
    """The source file to blame among those the lines name (else the first named)."""
    files = [
        f.group(1) for ln in lines if ".c:" in ln or ".h:" in ln for f in _FILE_RE.finditer(ln)
    ]
    return next(
        (f for f in files if not _GUILTY_FILE_IGNORES.match(f)), files[0] if files else None
    )
