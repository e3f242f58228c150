"""The crash families: every fact about one kind of kernel report in one place.

A `Family` says which literal header starts a report, what vetoes it, how its title is
made (`Format`s with their guilty-frame recipes), what its titles mean (`kinds`: the
report type and whether it is memory corruption, which the verdict and bisect read)
and what of it stops a boot (`boot_oops`). To add a crash family, add a `Family` here
(and a log under tests/data/ if a test needs one); the parser, the verdict, bisect
signatures and the boot detector all read this table.

Families are tried in order (the first whose header a line holds starts the report);
kinds are looked up in family order, the first match of a title wins.
"""

from __future__ import annotations

import re

from .frames import hang_extractor, irq_stall_extractor, stall_extractor
from .spec import CALL_TRACE, RIP, Family, Format, StackSpec, kind, rx


def _warning_stack(*skip: str) -> StackSpec:
    return StackSpec(
        parts=(rx(r"(?:" + RIP.pattern + r"|--- interrupt: [0-9]+ at {{FUNC}})"), None),
        parts2=(CALL_TRACE, None),
        skip=skip,
    )


# Where the interrupted code starts in a stall report's stack.
_STALL_IRQ = re.compile(r"apic_timer_interrupt|\(__irq_svc\)|\b__irq_svc\+|el1h_64_irq\b")
_RIP_STACK = StackSpec(parts=(RIP, CALL_TRACE, None), parts2=(CALL_TRACE, None))
_TRACE_STACK = StackSpec(parts=(CALL_TRACE, None))
# Bad unlock balance: the release site lockdep names, else (when that is a generic
# helper such as __might_fault) the first non-generic frame of the backtrace.
_UNLOCK_STACK = StackSpec(
    parts=(rx(r"is trying to release lock"), rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}")),
    parts2=(CALL_TRACE, None),
)
_RIP_ONLY = StackSpec(parts=(RIP,), parts2=(CALL_TRACE, None))
_LOCK_AT = rx(r"at: (?:{{PC}} +)?{{FUNC}}")

_KASAN_SKIP = ("^kmem_", "^slab_", "^kfree", "^vunmap", "^vfree", "^__free_", "^free_")

FAMILIES: tuple[Family, ...] = (
    Family(
        "BUG:",
        (
            Format(
                rx(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}"),
                "KASAN: {kind} {rw} in {func}",
                report=rx(
                    r"BUG: KASAN: (?P<kind>[a-z\-]+) in [A-Za-z0-9_]+(?:.*\n){0,12}?"
                    r".*(?P<rw>Read|Write) (?:of|at addr)"
                ),
                stack=StackSpec(
                    parts=(rx(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), CALL_TRACE, None)
                ),
            ),
            Format(
                rx(r"BUG: KASAN: double-free or invalid-free in {{FUNC}}"),
                "KASAN: invalid-free in {func}",
                stack=StackSpec(
                    parts=(
                        rx(r"BUG: KASAN: double-free or invalid-free in {{FUNC}}"),
                        CALL_TRACE,
                        None,
                    ),
                    skip=_KASAN_SKIP,
                ),
            ),
            Format(
                rx(r"BUG: KASAN: (?:double-free|invalid-free)"),
                "KASAN: invalid-free in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=_KASAN_SKIP),
            ),
            Format(
                rx(r"BUG: KASAN: ([a-z\-]+) on address"),
                "KASAN: {kind} {rw}",
                report=rx(
                    r"BUG: KASAN: (?P<kind>[a-z\-]+) on address(?:.*\n){0,12}?"
                    r".*(?P<rw>Read|Write) of size"
                ),
            ),
            Format(
                rx(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}"),
                "KASAN: {kind} in {func}",
                report=rx(r"BUG: KASAN: (?P<kind>[a-z\-]+) in "),
                stack=StackSpec(
                    parts=(rx(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), CALL_TRACE, None)
                ),
            ),
            Format(rx(r"BUG: KASAN: (?P<what>.*)"), "KASAN: {what}", garbled=True),
            Format(
                rx(r"BUG: KFENCE: (?P<kind>[a-z\- ]+?) in {{FUNC}}"),
                "KFENCE: {kind} in {func}",
                stack=StackSpec(
                    parts=(rx(r"BUG: KFENCE: (?:[a-z\- ]+?) in {{FUNC}}"),),
                    parts2=(CALL_TRACE, None),
                ),
            ),
            Format(
                rx(r"BUG: KMSAN: (?P<kind>[a-z\-]+)"),
                "KMSAN: {kind} in {func}",
                stack=StackSpec(
                    parts=(rx(r"BUG: KMSAN: "), None),
                    # Kernels before ~5.13 print a `Call Trace:` header under the title.
                    parts2=(CALL_TRACE, None),
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
            Format(rx(r"BUG: KCSAN: (?P<what>.*)"), "KCSAN: {what}"),
            Format(
                rx(
                    r"BUG: (?:unable to handle kernel paging request|unable to handle page "
                    r"fault for address|Unable to handle kernel data access"
                    # x86 SMAP/SMEP faults: the kernel touched user memory; titled as
                    # arm64's `Unable to handle kernel access to user memory` is.
                    r"|unable to handle kernel access to user memory)"
                ),
                "BUG: unable to handle kernel paging request in {func}",
                stack=_RIP_STACK,
            ),
            Format(
                rx(
                    r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL "
                    r"pointer dereference|Kernel NULL pointer dereference)"
                ),
                "BUG: unable to handle kernel NULL pointer dereference in {func}",
                stack=_RIP_STACK,
            ),
            Format(
                rx(r"BUG: (?:unable to handle kernel|Unable to handle kernel)"),
                "BUG: unable to handle kernel",
                garbled=True,
            ),
            Format(
                rx(
                    r"BUG: (?P<lk>spinlock|rwlock) (?P<what>lockup suspected|already unlocked|"
                    r"recursion|bad magic|wrong owner|wrong CPU|cpu recursion)"
                ),
                "BUG: {lk} {what} in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("spin_", "_lock", "rwlock")),
            ),
            Format(
                rx(r"BUG: soft lockup"),
                "BUG: soft lockup in {func}",
                stack=StackSpec(
                    parts=(RIP, CALL_TRACE, None),
                    parts2=(CALL_TRACE, None),
                    extractor=stall_extractor,
                ),
            ),
            Format(
                rx(r"BUG: .*still has locks held!"),
                "BUG: still has locks held in {func}",
                stack=StackSpec(parts=(rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}"),)),
            ),
            Format(
                rx(r"BUG: lock held when returning to user space"),
                "BUG: lock held when returning to user space in {func}",
                stack=StackSpec(parts=(rx(r"leaving the kernel with locks still held"), _LOCK_AT)),
            ),
            Format(
                rx(r"BUG: bad unlock balance detected!"),
                "BUG: bad unlock balance in {func}",
                stack=_UNLOCK_STACK,
            ),
            Format(
                rx(r"BUG: held lock freed!"),
                "BUG: held lock freed in {func}",
                stack=StackSpec(parts=(rx(r"{{PC}} +{{FUNC}}|at: {{FUNC}}"),)),
            ),
            Format(
                rx(r"BUG: Invalid wait context"),
                "WARNING: locking bug in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("might_fault",)),
            ),
            Format(rx(r"BUG: Bad rss-counter state"), "BUG: Bad rss-counter state"),
            Format(
                rx(r"BUG: non-zero (?P<what>nr_ptes|nr_pmds|pgtables_bytes) on freeing mm"),
                "BUG: non-zero {what} on freeing mm",
            ),
            Format(
                rx(r"BUG: Dentry .* still in use \(\d+\) \[(?P<what>unmount) of [^\]]+\]"),
                "BUG: Dentry still in use in {what}",
            ),
            Format(
                rx(r"BUG: Bad page state"),
                "BUG: Bad page state in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
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
                rx(r"BUG: Bad page map"),
                "BUG: Bad page map in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=(
                        "^print_bad_pte",
                        "^zap_",
                        "^unmap_",
                        "^vm_normal_page",
                        "^__vm_normal_page",
                    ),
                ),
            ),
            # Kernels >= 5.19 follow the pool dump with the stacks of the busy workers
            # of the stalled pools, each under `Workqueue: <wq> <work function>`: the
            # first such work function is the one holding the pool.
            Format(
                rx(r"BUG: workqueue lockup"),
                "BUG: workqueue lockup in {work}",
                report=re.compile(
                    r"Showing backtraces of busy workers in stalled worker pools:"
                    r"(?:.*\n)+?.*Workqueue: \S+ (?P<work>[A-Za-z0-9_]+)"
                ),
            ),
            Format(rx(r"BUG: workqueue lockup"), "BUG: workqueue lockup"),
            Format(
                rx(r"BUG: sleeping function called from invalid context"),
                "BUG: sleeping function called from invalid context in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("^__might_", "might_")),
            ),
            Format(
                rx(r"BUG: scheduling while atomic"),
                "BUG: scheduling while atomic in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=("schedule", "^__switch_to", "^preempt_", "^context_switch"),
                ),
            ),
            Format(
                rx(r"BUG: using (?P<what>[a-z_]+)\(\) in preemptible"),
                "BUG: using {what}() in preemptible code in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=("preemption", "preempt", "^debug_", "processor_id", "this_cpu"),
                ),
            ),
            Format(
                rx(r"BUG: workqueue leaked lock or atomic"),
                "BUG: workqueue leaked lock or atomic in {what}",
                report=rx(
                    r"BUG: workqueue leaked lock or atomic(?:.*\n)+?"
                    r".*last function: (?P<what>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                rx(r"BUG: memory leak"),
                "memory leak in {func}",
                stack=StackSpec(
                    parts=(rx(r"backtrace(?: \(crc [0-9a-f]+\))?:"), None),
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
                rx(r"BUG: (?:TASK |IRQ )?stack guard page was hit at"),
                "BUG: stack guard page was hit in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=("stack_trace_save", "^arch_stack_walk"),
                    extractor=stall_extractor,
                ),
            ),
            Format(
                rx(r"BUG: (?:unable to handle|kernel) .*"),
                "BUG: unable to handle kernel",
                garbled=True,
            ),
            Format(rx(r"BUG:\s*(?:\n|$)"), "BUG: corrupted", garbled=True),
        ),
        suppress=(
            rx(r"ODEBUG:"),
            rx(r"Boot_DEBUG:"),
            rx(r"xlog_status:"),
            rx(r"DEBUG:"),
            rx(r"BUG: no syscalls can create resource"),
        ),
        kinds=(
            kind(r"KFENCE: use-after-free write", "KFENCE-USE-AFTER-FREE-WRITE", corruption=True),
            kind(r"KFENCE: use-after-free", "KFENCE-USE-AFTER-FREE-READ", corruption=True),
            kind(r"KFENCE: (?:invalid|out-of-bounds) write", "KFENCE-WRITE"),
            kind(r"KFENCE: (?:invalid read|out-of-bounds)", "KFENCE-READ"),
            kind(r"KFENCE: memory corruption", "KFENCE-MEMORY-CORRUPTION", corruption=True),
            kind(r"KFENCE: invalid free", "KFENCE-INVALID-FREE"),
            kind(r"KFENCE:", "KFENCE-UNKNOWN"),
            kind(r"KMSAN: uninit-value", "KMSAN-UNINIT-VALUE"),
            kind(
                r"KMSAN: (?:kernel-(?:usb-)?infoleak-after-free|use-after-free)",
                "KMSAN-USE-AFTER-FREE-READ",
            ),
            kind(r"KMSAN: kernel-(?:usb-)?infoleak", "KMSAN-INFO-LEAK"),
            kind(r"KMSAN:", "KMSAN-UNKNOWN"),
            kind(r"KASAN: null-ptr-deref Write", "KASAN-NULL-POINTER-DEREFERENCE-WRITE"),
            kind(r"KASAN: null-ptr-deref", "KASAN-NULL-POINTER-DEREFERENCE-READ"),
            kind(r"KASAN: (?:double-free|invalid-free)", "KASAN-INVALID-FREE"),
            # The verdict has always counted only `use-after-free` as corruption, not the
            # `slab-use-after-free` that kernels >= 6.5 print for the same bug: kept as is.
            kind(r"KASAN: use-after-free Write", "KASAN-USE-AFTER-FREE-WRITE", corruption=True),
            kind(r"KASAN: slab-use-after-free Write", "KASAN-USE-AFTER-FREE-WRITE"),
            kind(r"KASAN: use-after-free", "KASAN-USE-AFTER-FREE-READ", corruption=True),
            kind(r"KASAN: slab-use-after-free", "KASAN-USE-AFTER-FREE-READ"),
            kind(r"KASAN: [\w-]+ Write", "KASAN-WRITE"),
            kind(r"KASAN: [\w-]+ Read|KASAN: [\w-]*(?:out-of-bounds|memory-access)", "KASAN-READ"),
            kind(r"KASAN:", "KASAN-UNKNOWN"),
            kind(r"KCSAN: data-race", "KCSAN-DATARACE"),
            kind(r"KCSAN: assert", "KCSAN-ASSERT"),
            kind(r"KCSAN:", "KCSAN-UNKNOWN"),
            kind(
                r"BUG: unable to handle kernel NULL pointer dereference", "NULL-POINTER-DEREFERENCE"
            ),
            kind(r"BUG: unable to handle kernel paging request", "MEMORY-SAFETY-BUG"),
            # Page poisoning and the page-table checks saw a write to memory nobody owns.
            kind(
                r"BUG: Bad page (?:state|map)|BUG: Bad rss-counter",
                "MEMORY-CORRUPTION",
                corruption=True,
            ),
            kind(
                r"BUG: (?:bad unlock balance|held lock freed|rwlock|spinlock|still has locks held"
                r"|using)",
                "LOCKDEP",
            ),
            kind(
                r"BUG: (?:scheduling while atomic|sleeping function called from invalid context)",
                "ATOMIC-SLEEP",
            ),
            kind(r"memory leak in", "LEAK"),
            kind(r"BUG: bad usercopy", "BUG"),
            kind(r"BUG: stack guard page", "UNKNOWN"),
            kind(r"BUG: (?:soft|hard) lockup", "HANG"),
        ),
        boot_oops=r"BUG: unable to handle",
    ),
    Family(
        "WARNING:",
        (
            Format(
                rx(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at 0x0)"),
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
                rx(r"WARNING: .*mm/usercopy\.c.* usercopy_warn"),
                "WARNING: bad usercopy in {func}",
                stack=_warning_stack("usercopy", "__check"),
            ),
            Format(
                rx(r"WARNING: .*lib/kobject\.c.* kobject_"),
                "WARNING: kobject bug in {func}",
                stack=_warning_stack("kobject_"),
            ),
            Format(
                rx(r"WARNING: .*fs/proc/generic\.c.* proc_register"),
                "WARNING: proc registration bug in {func}",
                stack=_warning_stack("proc_"),
            ),
            Format(
                rx(r"WARNING: .*lib/refcount\.c.* refcount_"),
                "WARNING: refcount bug in {func}",
                stack=_warning_stack("refcount", "kobject_"),
            ),
            Format(
                rx(r"WARNING: .*kernel/locking/lockdep\.c.*lock_"),
                "WARNING: locking bug in {func}",
                stack=_warning_stack("lock_sock", "release_sock"),
            ),
            Format(
                rx(r"WARNING: lock held when returning to user space"),
                "WARNING: lock held when returning to user space in {func}",
                stack=StackSpec(parts=(rx(r"leaving the kernel with locks still held"), _LOCK_AT)),
            ),
            Format(
                rx(r"WARNING: .*mm/.*\.c.* k?.?malloc"),
                "WARNING: kmalloc bug in {func}",
                stack=_warning_stack(
                    "kmalloc", "kcalloc", "kzalloc", "krealloc", "vmalloc", "slab", "kmem"
                ),
            ),
            Format(
                rx(r"WARNING: .*mm/vmalloc\.c.* __vmalloc_node_range"),
                "WARNING: zero-size vmalloc in {func}",
                stack=_warning_stack("vmalloc", "vzalloc", "kvmalloc", "kvzalloc"),
            ),
            Format(
                rx(r"WARNING: .* usb_submit_urb"),
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
                rx(r"WARNING: .*kernel/locking/irqflag-debug\.c.* warn_bogus_irq_restore"),
                "WARNING in {func}",
                stack=_warning_stack("irq_restore", "irqrestore", "raw_local_irq", "bogus"),
            ),
            Format(
                rx(r"WARNING: .* at {{SRC}} {{FUNC}}"),
                "WARNING in {func}",
                stack=_warning_stack(),
            ),
            Format(
                rx(r"WARNING: (?:\[.*\] )?{{SRC}} at {{FUNC}}"),
                "WARNING in {func}",
                stack=_warning_stack(),
            ),
            # 6.x prints `WARNING: file:line at 0xADDR, CPU#n: comm/pid` when the
            # address has no symbol: the stack names the function.
            Format(
                rx(r"WARNING: (?:\[.*\] )?{{SRC}} at (?:0x)?[0-9a-f]+,? CPU"),
                "WARNING in {func}",
                stack=_warning_stack(),
            ),
            # Lockdep's "a task exits or freezes holding a lock" (kernels >= 5.x say
            # WARNING where older ones said BUG): blame where the lock was taken.
            Format(
                rx(r"WARNING: .*still has locks held!"),
                "WARNING: still has locks held in {func}",
                stack=StackSpec(
                    parts=(rx(r"still has locks held!"), _LOCK_AT),
                    parts2=(CALL_TRACE, None),
                ),
            ),
            Format(
                rx(r"WARNING: possible circular locking dependency detected"),
                "possible deadlock in {func}",
                report=rx(
                    r"WARNING: possible circular locking dependency detected"
                    r"(?:.*\n)+?.*is trying to acquire lock"
                ),
                stack=StackSpec(
                    parts=(rx(r"is trying to acquire lock"), _LOCK_AT, _LOCK_AT, None),
                    skip=(
                        "process_one_work",
                        "flush_workqueue",
                        "drain_workqueue",
                        "destroy_workqueue",
                    ),
                ),
            ),
            Format(
                rx(r"WARNING: possible irq lock inversion dependency detected"),
                "possible deadlock in {func}",
                stack=StackSpec(parts=(rx(r"just changed the state of lock"), _LOCK_AT)),
            ),
            Format(
                rx(r"WARNING: (?:SOFT|HARD)IRQ-safe -> (?:SOFT|HARD)IRQ-unsafe lock order"),
                "possible deadlock in {func}",
                stack=StackSpec(
                    parts=(rx(r"which became (?:SOFT|HARD)IRQ-irq-safe at:"), None),
                    parts2=(rx(r"is trying to acquire"), _LOCK_AT),
                ),
            ),
            Format(
                rx(r"WARNING: possible recursive locking detected"),
                "possible deadlock in {func}",
                stack=StackSpec(parts=(rx(r"is trying to acquire lock"), _LOCK_AT)),
            ),
            Format(
                rx(r"WARNING: inconsistent lock state"),
                "inconsistent lock state in {func}",
                # The stack ends in the lock being taken: the socket lock's helpers are
                # how the caller takes it, like the spin/mutex primitives skipped anyway.
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    parts2=(rx(r"takes"), _LOCK_AT),
                    skip=("^lock_sock", "^release_sock$"),
                ),
            ),
            Format(
                rx(r"WARNING: suspicious RCU usage"),
                "WARNING: suspicious RCU usage in {func}",
                report=rx(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}"),
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
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
                rx(r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '(?P<reg>[^']+)'"),
                "WARNING: kernel stack regs has bad '{reg}' value",
            ),
            Format(
                rx(r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value"),
                "WARNING: kernel stack frame pointer has bad value",
            ),
            Format(
                rx(r"WARNING: bad unlock balance detected!"),
                "WARNING: bad unlock balance in {func}",
                stack=_UNLOCK_STACK,
            ),
            Format(
                rx(r"WARNING: held lock freed!"),
                "WARNING: held lock freed in {func}",
                stack=StackSpec(parts=(rx(r"at:(?: {{PC}})? +{{FUNC}}|{{PC}} +{{FUNC}}"),)),
            ),
            Format(
                rx(r"WARNING: Nested lock was not taken"),
                "WARNING: nested lock was not taken in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None)),
            ),
            Format(
                rx(r"WARNING: kernel stack (?:regs|frame pointer) .* has bad"),
                "WARNING: kernel stack regs has bad value",
            ),
            Format(rx(r"WARNING:\s*(?:\n|$)"), "WARNING: corrupted", garbled=True),
        ),
        suppress=(
            rx(r"WARNING: /etc/ssh/moduli does not exist"),
            rx(r"WARNING: workqueue cpumask: online intersect > possible intersect"),
            rx(r"WARNING: [Tt]he mand mount option"),
            rx(r"WARNING: fbcon: Driver"),
            rx(r"(?i)uses wireless extensions"),
        ),
        info_without_stack=True,
        kinds=(
            kind(r"WARNING: refcount bug", "REFCOUNT-WARNING"),
            kind(
                r"WARNING: (?:bad unlock balance|held lock freed|lock held|locking bug|nested lock"
                r"|still has locks held|suspicious RCU usage)|inconsistent lock state"
                r"|possible deadlock",
                "LOCKDEP",
            ),
            kind(r"WARNING in", "WARNING"),
            kind(r"WARNING: corrupted|WARNING: kernel stack", "UNKNOWN"),
            kind(r"WARNING:", "WARNING"),
        ),
    ),
    Family(
        "INFO:",
        (
            Format(
                rx(r"INFO: possible circular locking dependency detected"),
                "possible deadlock in {func}",
                report=rx(
                    r"INFO: possible circular locking dependency detected(?:.*\n)+?"
                    r".*is trying to acquire lock(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                rx(r"INFO: possible irq lock inversion dependency detected"),
                "possible deadlock in {func}",
                report=rx(
                    r"INFO: possible irq lock inversion dependency detected(?:.*\n)+?"
                    r".*just changed the state of lock(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                rx(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
                "possible deadlock in {func}",
                report=rx(
                    r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected(?:.*\n)+?"
                    r".*is trying to acquire(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                rx(r"INFO: possible recursive locking detected"),
                "possible deadlock in {func}",
                report=rx(
                    r"INFO: possible recursive locking detected(?:.*\n)+?"
                    r".*is trying to acquire lock(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                rx(r"INFO: inconsistent lock state"),
                "inconsistent lock state in {func}",
                report=rx(
                    r"INFO: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?"
                    r".*at: {{PC}} +(?P<func>[A-Za-z0-9_]+)"
                ),
            ),
            Format(
                rx(
                    r"INFO: rcu_(?:preempt|sched|bh|tasks\w*) (?:self-)?detected"
                    r"(?: expedited)? stall"
                ),
                "INFO: rcu detected stall in {func}",
                stack=StackSpec(
                    parts=(_STALL_IRQ, RIP, None),
                    parts2=(_STALL_IRQ, None),
                    skip=("apic_timer_interrupt", "rcu"),
                    extractor=irq_stall_extractor,
                ),
            ),
            Format(
                rx(r"INFO: trying to register non-static key"),
                "INFO: trying to register non-static key in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("stack", "lock", "IRQ")),
            ),
            Format(
                rx(r"INFO: suspicious RCU usage"),
                "INFO: suspicious RCU usage in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=("rcu", "kmem", "slab", "kmalloc", "vmalloc", "kcalloc", "kzalloc"),
                ),
            ),
            Format(
                rx(r"INFO: task .* blocked for more than"),
                "INFO: task hung in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), extractor=hang_extractor),
            ),
            Format(
                rx(r"INFO: task .* can't die for more than .* seconds"),
                "INFO: task can't die in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("schedule",)),
            ),
            Format(
                rx(r"INFO: (?P<what>Freed|Allocated) in (?P<where>.*)"),
                "INFO: {what} in {where}",
                garbled=True,
            ),
            Format(rx(r"INFO:\s*(?:\n|$)"), "INFO: corrupted", garbled=True),
        ),
        suppress=(
            rx(r"INFO: lockdep is turned off"),
            rx(r"INFO: Stall ended before state dump start"),
            rx(r"INFO: NMI handler"),
            rx(r"INFO: recovery required on readonly filesystem"),
            rx(r"(?:handler|interrupt).*took too long"),
            rx(r"_INFO::"),
            rx(r"INFO: sys_.* is not present in /proc/kallsyms"),
            rx(r"INFO: no syscalls can create resource"),
            rx(r"rcu: INFO: rcu_\w+ detected expedited stalls"),
        ),
        kinds=(kind(r"INFO: rcu detected stall|INFO: task (?:can't die|hung)", "HANG"),),
    ),
    Family(
        "Unable to handle kernel",
        (
            Format(
                rx(r"Unable to handle kernel NULL pointer dereference"),
                "BUG: unable to handle kernel NULL pointer dereference in {func}",
                stack=_RIP_STACK,
            ),
            Format(
                rx(
                    r"Unable to handle kernel (?:paging request|access to user memory|"
                    r"write to read-only memory|execute from non-executable memory|"
                    r"execution of user memory)"
                ),
                "BUG: unable to handle kernel paging request in {func}",
                stack=_RIP_STACK,
            ),
        ),
        boot_oops=r"Unable to handle kernel",
    ),
    Family(
        "general protection fault",
        (
            Format(
                rx(r"general protection fault.*:"),
                "general protection fault in {func}",
                stack=_RIP_STACK,
            ),
        ),
        kinds=(kind(r"general protection fault", "DOS"),),
        boot_oops=r"general protection fault",
    ),
    Family(
        "stack segment: ",
        (Format(rx(r"stack segment: "), "stack segment fault in {func}", stack=_RIP_STACK),),
        kinds=(kind(r"stack segment fault", "DOS"),),
    ),
    Family(
        "pagealloc: memory corruption",
        (
            Format(
                rx(r"pagealloc: memory corruption"),
                "pagealloc: memory corruption in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None)),
            ),
        ),
        kinds=(kind(r"pagealloc: memory corruption", "MEMORY-CORRUPTION", corruption=True),),
    ),
    Family(
        "list_add corruption",
        (
            Format(
                rx(r"list_add corruption"),
                "BUG: corrupted list in {func}",
                stack=_warning_stack(),
            ),
        ),
        kinds=(kind(r"BUG: corrupted list", "MEMORY-SAFETY-BUG", corruption=True),),
    ),
    Family(
        "list_del corruption",
        (
            Format(
                rx(r"list_del corruption"),
                "BUG: corrupted list in {func}",
                stack=_warning_stack(),
            ),
        ),
    ),
    Family(
        "Kernel panic",
        (
            Format(
                rx(
                    r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: "
                    r"{{FUNC}}"
                ),
                "kernel panic: stack is corrupted in {func}",
                stack=StackSpec(
                    parts=(rx(r"Kernel stack is corrupted in: {{FUNC}}"),),
                    parts2=(CALL_TRACE, None),
                    skip=("stack_chk",),
                ),
            ),
            Format(
                rx(r"Kernel panic - not syncing: stack-protector:"),
                "kernel panic: stack is corrupted in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("stack_chk",)),
            ),
            Format(
                rx(r"Kernel panic - not syncing: corrupted stack end"),
                "kernel panic: corrupted stack end in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=("schedule", "retint_kernel"),
                    extractor=stall_extractor,
                ),
            ),
            Format(
                rx(r"Kernel panic - not syncing: kernel stack overflow"),
                "kernel stack overflow in {func}",
                stack=StackSpec(
                    parts=(CALL_TRACE, None),
                    skip=(
                        "handle_bad_stack",
                        "^bad_stack",
                        "^__bad_stack",
                        "^el1h_",
                        "^el1_",
                        "^__pi_",
                        "overflow",
                    ),
                    extractor=stall_extractor,
                ),
            ),
            Format(
                rx(r"Kernel panic - not syncing: Attempted to kill init!"),
                "kernel panic: Attempted to kill init!",
            ),
            Format(
                rx(
                    r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error "
                    r"-\d+"
                ),
                "kernel panic: Couldn't open N_TTY ldisc",
            ),
            Format(
                rx(r"Kernel panic - not syncing: Fatal exception"),
                "kernel panic: Fatal exception",
                garbled=True,
            ),
            Format(
                rx(r"Kernel panic - not syncing: panic_on_warn set"),
                "kernel panic: panic_on_warn set",
                garbled=True,
            ),
            Format(
                rx(r"Kernel panic - not syncing: hung_task: blocked tasks"),
                "kernel panic: hung_task: blocked tasks",
                garbled=True,
            ),
            Format(rx(r"Kernel panic - not syncing: (?P<msg>.*)"), "kernel panic: {msg}"),
        ),
        kinds=(kind(r"kernel panic:|kernel stack overflow", "DOS"),),
    ),
    Family(
        "PANIC: double fault",
        (Format(rx(r"PANIC: double fault"), "PANIC: double fault in {func}", stack=_RIP_ONLY),),
        kinds=(kind(r"PANIC: double fault", "DOS"),),
    ),
    Family(
        "kernel BUG",
        (
            Format(
                rx(r"kernel BUG at mm/usercopy\.c"),
                "BUG: bad usercopy in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("usercopy", "__check")),
            ),
            Format(
                rx(r"kernel BUG at lib/list_debug\.c"),
                "BUG: corrupted list in {func}",
                stack=_warning_stack(),
            ),
            Format(rx(r"kernel BUG at "), "kernel BUG in {func}", stack=_warning_stack()),
            Format(rx(r"kernel BUG"), "kernel BUG in {func}", stack=_warning_stack()),
        ),
        kinds=(kind(r"kernel BUG", "BUG"),),
        boot_oops=r"kernel BUG at",
    ),
    Family(
        "BUG kmalloc-",
        (Format(rx(r"BUG kmalloc-.*: Object already free"), "BUG: Object already free"),),
        kinds=(kind(r"BUG: Object already free", "DOS"),),
    ),
    Family(
        "divide error:",
        (Format(rx(r"divide error: "), "divide error in {func}", stack=_RIP_ONLY),),
        kinds=(kind(r"divide error", "DOS"),),
    ),
    Family(
        "divide_error:",
        (Format(rx(r"divide_error: "), "divide error in {func}", stack=_RIP_ONLY),),
    ),
    Family(
        "invalid opcode:",
        (Format(rx(r"invalid opcode: "), "invalid opcode in {func}", stack=_RIP_ONLY),),
        kinds=(kind(r"invalid opcode", "DOS"),),
    ),
    Family(
        "Oops: int3",
        (Format(rx(r"Oops: int3"), "int3 in {func}", stack=_RIP_ONLY),),
        kinds=(kind(r"int3 in", "DOS"),),
    ),
    Family(
        "UBSAN:",
        (
            Format(
                rx(r"UBSAN: Undefined behaviour in"),
                "UBSAN: undefined-behaviour in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("ubsan", "overflow")),
            ),
            Format(
                rx(r"UBSAN: (?P<kind>[a-z\-]+) in"),
                "UBSAN: {kind} in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None), skip=("ubsan", "overflow")),
            ),
        ),
        kinds=(
            kind(r"UBSAN: array-index-out-of-bounds", "MEMORY-SAFETY-UBSAN"),
            kind(r"UBSAN:", "UBSAN"),
        ),
    ),
    Family(
        "Watchdog detected hard LOCKUP",
        (
            Format(
                rx(r"Watchdog detected hard LOCKUP"),
                "BUG: hard lockup in {func}",
                stack=StackSpec(
                    parts=(RIP, CALL_TRACE, None),
                    parts2=(CALL_TRACE, None),
                    extractor=stall_extractor,
                ),
            ),
        ),
    ),
    Family(
        "unregister_netdevice: waiting for",
        (
            Format(
                rx(r"unregister_netdevice: waiting for (?:.*) to become free"),
                "unregister_netdevice: waiting for DEV to become free",
            ),
        ),
        kinds=(kind(r"unregister_netdevice", "DOS"),),
    ),
    Family(
        "Unhandled fault:",
        (
            Format(
                rx(r"Unhandled fault:"),
                "Unhandled fault in {func}",
                stack=StackSpec(
                    parts=(RIP,),
                    parts2=(rx(r"Backtrace:|Call [Tt]race:"), None),
                ),
            ),
        ),
        kinds=(kind(r"Unhandled fault", "DOS"),),
    ),
    Family(
        "Internal error:",
        (
            Format(
                rx(r"Internal error: Oops - BUG"),
                "kernel BUG in {func}",
                stack=_RIP_STACK,
            ),
            Format(rx(r"Internal error:"), "Internal error in {func}", stack=_RIP_STACK),
        ),
        kinds=(kind(r"Internal error", "DOS"),),
        boot_oops=r"Internal error: Oops",
    ),
    Family(
        "VFS: Busy inodes after unmount",
        (
            Format(
                rx(r"VFS: Busy inodes after unmount"),
                "VFS: Busy inodes after unmount (use-after-free)",
            ),
        ),
        kinds=(kind(r"VFS: Busy inodes", "DOS"),),
    ),
    Family(
        "VFS: Close: file count is 0",
        (
            # Closing a file nobody holds any more: a reference was dropped twice.
            Format(
                rx(r"VFS: Close: file count is 0"),
                "VFS: Close: file count is zero (use-after-free)",
            ),
        ),
        kinds=(kind(r"VFS: Close: file count is zero", "DOS"),),
    ),
    Family(
        "rust_kernel: panicked",
        (
            # Rust >= 1.73: `panicked at file:line:col:` and the message on the next line.
            Format(
                rx(r"rust_kernel: panicked at [^ ']+:\d+:\d+:\s*(?:\n|$)"),
                "{msg} in {func}",
                report=rx(r"rust_kernel: panicked at [^ ']+:\d+:\d+:\s*\n(?P<msg>.+)"),
                stack=StackSpec(parts=(CALL_TRACE, None)),
            ),
            # Older Rust: `panicked at 'message', file:line:col`.
            Format(
                rx(r"rust_kernel: panicked at '(?P<msg>.*)', "),
                "{msg} in {func}",
                stack=StackSpec(parts=(CALL_TRACE, None)),
            ),
            Format(rx(r"rust_kernel: panicked"), "rust panic in {func}",
                   stack=StackSpec(parts=(CALL_TRACE, None))),
        ),
        kinds=(
            kind(
                r"attempt to \w+ with overflow|attempt to (?:divide|calculate the remainder)"
                r"|index out of bounds|called `(?:Option|Result)::|rust panic",
                "BUG",
            ),
        ),
    ),
    Family(
        "trusty: panic",
        (
            Format(
                rx(r"trusty: panic.* ASSERT FAILED"),
                "trusty: ASSERT FAILED: {what}",
                report=rx(
                    r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): "
                    r"(?P<what>.+)"
                ),
            ),
            Format(
                rx(r"trusty: panic.* ASSERT FAILED.*: *(?P<what>.*)"),
                "trusty: ASSERT FAILED: {what}",
                garbled=True,
            ),
            Format(
                rx(r"trusty: panic"),
                "trusty: panic: {what}",
                report=rx(r"trusty: panic \(.*?\): (?P<what>.+)"),
            ),
        ),
        kinds=(kind(r"trusty:", "DOS"),),
    ),
    Family(
        "SYZFAIL:",
        (Format(rx(r"SYZFAIL:(?P<what>.*)"), "SYZFAIL:{what}"),),
        kinds=(kind(r"SYZFAIL", "SYZ-FAILURE"),),
    ),
    Family(
        "SYZFATAL:",
        (Format(rx(r"SYZFATAL:(?P<what>.*)"), "SYZFATAL:{what}"),),
        kinds=(kind(r"SYZFATAL", "SYZ-FAILURE"),),
    ),
    Family(
        "panic:",
        (Format(rx(r"panic:(?P<what>.*)"), "panic:{what}"),),
        suppress=(
            rx(r"_panic:"),
            rx(r"xlog_status:"),
            rx(r"ddb\.onpanic:"),
            rx(r"evtlog_status:"),
            rx(r"Kernel panic"),
        ),
        kinds=(kind(r"panic:", "DOS"),),
    ),
    Family(
        "fatal error:",
        (Format(rx(r"fatal error:"), "go runtime error"),),
        suppress=(rx(r"ALSA"), rx(r"fatal error: cannot create timer")),
        kinds=(kind(r"go runtime error", "DOS"),),
    ),
)

# A start line of these kinds continues the report that is already open (the panic
# after an oops, the arm64 `Internal error:` after `Unable to handle ...`, ...).
CONTINUATIONS = re.compile(
    r"invalid opcode: 0000|Kernel panic - not syncing|unregister_netdevice: waiting for"
    r"|PANIC: double fault|Internal error:|kernel BUG at lib/list_debug\.c"
    r"|WARNING: .* at lib/list_debug\.c|WARNING: lib/list_debug\.c"
    r"|Oops: general protection fault|trusty: panic|fatal error:"
    # The BUG() a Rust panic ends in, and the 6.x hung-task note naming the lock owner.
    r"|kernel BUG at rust/helpers/|INFO: task .* is blocked on a"
)
# Info messages with a stack trace: they cut a report short but are no crash themselves.
INFO_WITH_STACK = (
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
)
