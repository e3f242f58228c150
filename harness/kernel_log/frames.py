"""Guilty-frame selection: walk a report's stack the way its family's `StackSpec` says,
skip the generic helpers, and name the function (and source file) to blame.

Each heuristic carries its why; the families choose among them (stall and hang reports
have their own extractors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .rustsym import rust_name
from .skips import GENERIC_FRAMES, GUILTY_FILE_IGNORES, compile_skips
from .spec import ARM32_CALLER, FRAME_RES, STACK_STARTS, StackSpec

# The generic functions a title never names (each with its why: `skips.GENERIC_FRAMES`).
SKIP_RE = compile_skips(GENERIC_FRAMES)


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


def _stall_frame(frames: list[str], anchors: re.Pattern[str]) -> str | None:
    prev = frames[0]
    for frame in frames:
        if anchors.search(frame):
            if "smp_call_function" in frame:
                return "smp_call_function"
            return _strip_syscall(prev)
        prev = frame
    return None


def stall_extractor(frames: list[str]) -> str | None:
    """Stalls loop somewhere random: name them after the frame just above the entry point."""
    return _stall_frame(frames, _STALL_ANCHORS)


# The hrtimer callback dispatch is an entry point too (as call_timer_fn is for timers):
# the frame above it is the callback that looped. Only for stacks that start at the
# interrupted code (rcu stalls): a soft lockup's own report path runs through it too.
_IRQ_STALL_ANCHORS = re.compile(rf"{_STALL_ANCHORS.pattern}|^__run_hrtimer$|^__hrtimer_run_queues$")


def irq_stall_extractor(frames: list[str]) -> str | None:
    """`stall_extractor` for the interrupted code of an rcu stall, hrtimer callbacks too."""
    return _stall_frame(frames, _IRQ_STALL_ANCHORS)


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
    """The bare name of an Itanium-mangled C++ symbol (_Z8fakeNameiii -> fakeName) or a
    Rust v0 one (`_R` prefix)."""
    if name.startswith("_R"):
        return rust_name(name)
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
# A frame in a sanitizer's own test module (`[test_kasan]`, `[kasan_test]`, `[kmsan_test]`):
# that code makes bad accesses on purpose to exercise the sanitizer, so it is sanitizer
# code like the runtime and the title names whoever ran the tests.
_SANITIZER_TEST_MODULE = re.compile(r"\[\w*(?:kasan|kmsan|kfence|kcsan|ubsan)\w*\]\s*$")


def _kept_frame(line: str, skip: Callable[[str], bool]) -> str | None:
    """The (demangled) frame a stack line names, unless it is generic code."""
    fr = frame_of(line)
    if fr is None or _SANITIZER_TEST_MODULE.search(line):
        return None
    fr = _demangle(fr)
    return None if skip(fr) else fr


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
                fr = _kept_frame(ln, skip)
                if fr is not None:
                    frames.append(fr)
        else:
            while pos < len(lines):
                ln = lines[pos]
                pos += 1
                m = part.search(ln)
                if m:
                    got = _capture(m, skip)
                    if got and not _SANITIZER_TEST_MODULE.search(ln):
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


# A source file named in the report: the first one outside the generic code
# (`skips.GUILTY_FILE_IGNORES`) is blamed.
_FILE_RE = re.compile(r"(?:^|(?<=[\s(\[]))([\w/-][\w./-]*\.[ch]):\d+")
_GUILTY_FILE_IGNORES = compile_skips(GUILTY_FILE_IGNORES)


def guilty_file(lines: Sequence[str]) -> str | None:
    """The source file to blame among those the lines name (else the first named)."""
    files = [
        f.group(1) for ln in lines if ".c:" in ln or ".h:" in ln for f in _FILE_RE.finditer(ln)
    ]
    return next(
        (f for f in files if not _GUILTY_FILE_IGNORES.match(f)), files[0] if files else None
    )
