"""Generic kernel code a crash title never blames: the guilty-frame skip list.

A crash title names the first function of the stack that is not generic: the code
that *reports* a bug (sanitizer runtime, WARN/BUG machinery, printk, dump_stack), that
*enters* the kernel (syscall and exception entry, fault handlers) or that only *passes
a bad argument through* (allocators, string and format helpers, locking, list,
refcount, skb, workqueue and timer helpers) is skipped, so that the title names its
caller, where the bug almost always lives. Two reports of one bug then share a title
however the compiler inlined the helpers, and a helper never merges unrelated bugs.

The rules are general, by what the code does, not by the reports they were tuned on:
each entry says why its code is generic. Patterns are regexes searched in the function
name (anchor them with ^ and $ where a substring would catch real code). A family adds
its own skips in its `StackSpec.skip` (a KASAN invalid-free skips kfree, which the
general list does not, since a use-after-free *in* kfree is a real title).

`GUILTY_FILE_IGNORES` does the same for the source file a report blames.

The approach (skip generic frames, ignore generic files when blaming one) is
syzkaller's (pkg/report); the list is our own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Skip:
    """One generic-code pattern and why it is never the guilty frame (or file)."""

    pattern: str
    why: str


# The reasons, one per kind of generic code.
_SANITIZER = "sanitizer runtime: it reports the bad access, the caller made it"
_REPORT = "crash reporting machinery: it prints or raises the report"
_WARN = "WARN()/BUG() machinery: it raises the warning its caller asked for"
_ENTRY = "exception or syscall entry: how the kernel was entered, not what went wrong"
_FAULT = "page-fault handling: it handles the bad access, the faulting code made it"
_LOCK = "locking primitive: it takes or checks a lock its caller chose"
_LOCKDEP = "lockdep and lock tracing: it checks locks, the caller's lock use is at fault"
_ALLOC = "allocator internals: they pass a bad size, pointer or flag through from the caller"
_VMALLOC = "vmalloc internals: they map or free what the caller asked for"
_STRING = "string/memory helper: it copies or compares what its caller handed it"
_FORMAT = "printf/format helper: it formats what its caller handed it"
_USERCOPY = "user-copy helper: it moves data its caller sized"
_LIST = "list helper: the corrupted list belongs to the caller"
_REFCOUNT = "reference count helper: the caller's get/put balance is wrong"
_SKB = "skb helper: it grows, pulls or frees the buffer its caller got wrong"
_WQ = "workqueue internals: they run or flush work their caller queued"
_TIMER = "timer internals: they run or stop timers their caller armed"
_WAIT = "wait/wake primitive: it sleeps or wakes for its caller"
_DEVICE = "driver-model teardown: it walks devices, the driver's own release is at fault"
_USB = "USB core transfer helper: the driver's URB is at fault"
_PAGE = "page reference and page-lock helper: the caller's page use is at fault"
_RUST = "Rust runtime glue: panics and C helpers called from Rust code"
_RETPOLINE = "retpoline thunk: an indirect call trampoline"
_TREE = "rbtree helper: the tree belongs to the caller"
_HASH = "resizable hash table helper (lib/rhashtable.c): the table and keys are the caller's"
_DEBUG = "debug checks: they check an object the caller handed them"
_IO = "MMIO/port I/O accessor: it reads or writes the register its caller chose"
_BH = "softirq/irq masking primitive: it checks the context its caller runs in"

GENERIC_FRAMES: tuple[Skip, ...] = (
    # Sanitizers and instrumentation.
    Skip(r"^__sanitizer", _SANITIZER),
    Skip(r"^__asan", _SANITIZER),
    Skip(r"kasan", _SANITIZER),
    Skip(r"^__msan", _SANITIZER),
    Skip(r"^__hwasan", _SANITIZER),
    Skip(r"kmsan", _SANITIZER),
    Skip(r"kfence", _SANITIZER),
    Skip(r"^__ubsan_|^ubsan_", _SANITIZER),
    Skip(r"^__kcsan|^kcsan_|^__tsan_", _SANITIZER),
    Skip(r"^instrument_", _SANITIZER),
    Skip(r"check_memory_region", _SANITIZER),
    Skip(r"read_word_at_a_time", _SANITIZER),
    Skip(r"^write_comp_data$", _SANITIZER),
    # Reporting.
    Skip(r"print_address_description", _REPORT),
    Skip(r"print_report", _REPORT),
    Skip(r"panic", _REPORT),
    Skip(r"^print_tainted$", _REPORT),
    Skip(r"dump_stack", _REPORT),
    Skip(r"^dump_backtrace", _REPORT),
    Skip(r"^show_stack", _REPORT),
    Skip(r"^show_regs", _REPORT),
    Skip(r"^__show_regs", _REPORT),
    Skip(r"^die$", _REPORT),
    Skip(r"^__die", _REPORT),
    Skip(r"^die_kernel_fault", _REPORT),
    Skip(r"^bad_page$", _REPORT),
    Skip(r"^__?dump_page", _REPORT),
    Skip(r"^print_\w+_bug$", _REPORT + " (lockdep's print_*_bug reporters)"),
    # WARN()/BUG().
    Skip(r"invalid_op", _WARN),
    Skip(r"report_bug", _WARN),
    Skip(r"fixup_bug", _WARN),
    Skip(r"^do_error", _WARN),
    Skip(r"_trap$", _WARN),
    Skip(r"^do_trap", _WARN),
    Skip(r"handle_bug", _WARN),
    Skip(r"^bug_handler", _WARN),
    Skip(r"^brk_handler", _WARN),
    Skip(r"^call_break_hook", _WARN),
    Skip(r"warn_slowpath", _WARN),
    Skip(r"warn_alloc", _WARN),
    Skip(r"^__warn", _WARN),
    Skip(r"^warn_", _WARN),
    Skip(r"program_check_exception", _WARN),
    Skip(r"program_check_common", _WARN),
    Skip(r"fortify", _WARN),
    # Exception and syscall entry.
    Skip(r"^exc_", _ENTRY),
    Skip(r"^asm_exc_", _ENTRY),
    Skip(r"^asm_sysvec_|^sysvec_|^asm_common_interrupt$", _ENTRY),
    Skip(r"^entry_SYSCALL|^entry_INT80|^entry_SYSENTER", _ENTRY),
    Skip(r"^el1_", _ENTRY),
    Skip(r"^el0_", _ENTRY),
    Skip(r"^el[01][th]_64_", _ENTRY),
    Skip(r"^do_el0_svc$|^_?_?invoke_syscall$", _ENTRY),
    Skip(r"^irqentry_|^_?_?irq_exit_rcu$|^common_interrupt$", _ENTRY),
    # Fault handling.
    Skip(r"^do_mem_abort", _FAULT),
    Skip(r"^do_kernel_fault", _FAULT),
    Skip(r"^__do_kernel_fault", _FAULT),
    Skip(r"^do_translation_fault", _FAULT),
    Skip(r"^do_page_fault", _FAULT),
    Skip(r"^do_bad_area$", _FAULT),
    Skip(r"^__bad_area", _FAULT),
    Skip(r"^bad_area", _FAULT),
    Skip(r"^page_fault_oops", _FAULT),
    Skip(r"^no_context", _FAULT),
    Skip(r"^kernelmode_fixup_or_oops", _FAULT),
    Skip(r"^do_tag_", _FAULT),
    # Locking.
    Skip(r"spin_lock", _LOCK),
    Skip(r"spin_trylock", _LOCK),
    Skip(r"spin_unlock", _LOCK),
    Skip(r"raw_read_lock", _LOCK),
    Skip(r"raw_read_trylock", _LOCK),
    Skip(r"raw_write_lock", _LOCK),
    Skip(r"raw_write_trylock", _LOCK),
    Skip(r"^_raw_(?:read|write)_unlock", _LOCK),
    Skip(r"queued_spin_lock_slowpath|queued_(?:read|write)_lock_slowpath", _LOCK),
    Skip(r"^_?_?down(?:_read|_write)?(?:_common|_slowpath|_trylock|_killable|_interruptible)*$",
         _LOCK),
    Skip(r"^_?_?up_(?:read|write)$", _LOCK),
    Skip(r"^_?_?up$", _LOCK),
    Skip(r"^rwsem_down_|^__rwsem_", _LOCK),
    Skip(r"mutex_lock", _LOCK),
    Skip(r"mutex_trylock", _LOCK),
    Skip(r"mutex_unlock", _LOCK),
    Skip(r"mutex_remove_waiter", _LOCK),
    Skip(r"osq_lock", _LOCK),
    Skip(r"osq_unlock", _LOCK),
    Skip(r"^_?_?dec_and_lock", _LOCK),
    Skip(r"^percpu_down_(?:read|write)|^percpu_up_(?:read|write)", _LOCK),
    Skip(r"^_?_?rt_mutex_|^rt_spin_", _LOCK),
    Skip(r"^_?_?local_bh_(?:enable|disable)", _BH),
    # Lockdep.
    Skip(r"lockdep", _LOCKDEP),
    Skip(r"perf_trace", _LOCKDEP),
    Skip(r"lock_acquire", _LOCKDEP),
    Skip(r"lock_release", _LOCKDEP),
    Skip(r"lock_class", _LOCKDEP),
    Skip(r"^mark_lock", _LOCKDEP),
    Skip(r"^mark_held_locks", _LOCKDEP),
    Skip(r"^mark_usage", _LOCKDEP),
    Skip(r"print_usage_bug", _LOCKDEP),
    Skip(r"^trace_hardirqs", _LOCKDEP),
    Skip(r"^__might_resched", _LOCKDEP),
    Skip(r"reacquire_held_locks", _LOCKDEP),
    Skip(r"^valid_state$|^validate_chain$|^check_(?:prevs?_add|noncircular|deadlock|irq_usage)$",
         _LOCKDEP + " (kernel/locking/lockdep.c's dependency checks)"),
    # Allocators.
    Skip(r"^__alloc_pages", _ALLOC),
    Skip(r"^alloc_pages", _ALLOC),
    Skip(r"^kmalloc_order", _ALLOC),
    Skip(r"^_{2,3}kmalloc", _ALLOC),
    Skip(r"^kmalloc(?:_trace|_large|_node)?(?:_noprof)?$", _ALLOC),
    Skip(r"^kmem_cache_(?:alloc|free)", _ALLOC),
    Skip(r"^__do_kmalloc|^__kmem_cache_", _ALLOC),
    Skip(r"^slab_alloc|^___?slab_alloc|^slab_free|^__slab_free|^do_slab_free", _ALLOC),
    Skip(r"^k[vz]?realloc(?:_noprof)?$|^kvmalloc_node(?:_noprof)?$", _ALLOC),
    Skip(r"_noprof$", _ALLOC + " (the alloc-profiling entry points of kernels >= 6.10)"),
    Skip(r"^free_large_kmalloc", _ALLOC),
    Skip(r"^kfree$", _ALLOC),
    Skip(r"kvfree", _ALLOC),
    Skip(r"check_heap_object", _ALLOC),
    Skip(r"^__check_object_size", _ALLOC),
    Skip(r"^check_object", _ALLOC),
    Skip(r"^check_poison_mem|^check_poison", _DEBUG),
    Skip(r"^__?kernel_unpoison_pages|^unpoison_page", _DEBUG),
    # vmalloc.
    Skip(r"^__vmalloc_node|^__vmalloc_area_node|^vmap_pages_range|^vmap_range_noflush", _VMALLOC),
    Skip(r"^__get_vm_area|^alloc_vmap_area|^__vunmap|^vunmap_range", _VMALLOC),
    # Strings and memory.
    Skip(r"memcpy", _STRING),
    Skip(r"memcmp", _STRING),
    Skip(r"memset", _STRING),
    Skip(r"memchr", _STRING),
    Skip(r"memmove", _STRING),
    Skip(r"^str(?:n?cmp|l?n?cpy|scpy|n?len|nstr|chr|r?chr|n?cat|lcat|str|sep|casecmp)$", _STRING),
    Skip(r"^sized_strscpy$|^strncpy_from_user$|^strnlen_user$", _STRING),
    Skip(r"^kstrdup|^kstrndup|^kmemdup|^memdup_user", _STRING),
    # Formatting.
    Skip(r"^string$", _FORMAT),
    Skip(r"^pointer$", _FORMAT),
    Skip(r"snprintf|scnprintf", _FORMAT),
    Skip(r"^v?sprintf$|^vsnprintf$|^format_decode$|^number$", _FORMAT),
    Skip(r"^string_nocheck$|^widen_string$|^symbol_string$", _FORMAT),
    # The %p extensions of lib/vsprintf.c (%*ph, %pM, %pI4, %pU, %pE, %pb, ...).
    Skip(r"^(?:hex|bitmap(?:_list)?|mac_address|ip[46]_addr|ip6_compressed|uuid|escaped"
         r"|fourcc)_string$|^(?:special_hex_number|address_val|dentry_name)$", _FORMAT),
    Skip(r"kasprintf", _FORMAT),
    Skip(r"kvasprintf", _FORMAT),
    Skip(r"printk", _FORMAT),
    Skip(r"va_format", _FORMAT),
    Skip(r"^seq_v?printf$|^seq_buf_v?printf$", _FORMAT),
    Skip(r"^kstrto|^_parse_integer|^simple_strto", _STRING + " (number parsing)"),
    Skip(r"^_?dev_(?:info|notice|warn|err|alert|crit|emerg|printk)", _FORMAT),
    # User copies.
    Skip(r"copy_to_user", _USERCOPY),
    Skip(r"copy_from_user", _USERCOPY),
    Skip(r"^_?_?put_user", _USERCOPY),
    Skip(r"^_?_?get_user", _USERCOPY),
    Skip(r"might_fault", _USERCOPY),
    Skip(r"might_sleep", _USERCOPY),
    Skip(r"copy_(?:page_)?to_iter", _USERCOPY),
    # Lists and trees.
    Skip(r"list_add", _LIST),
    Skip(r"list_del", _LIST),
    Skip(r"list_replace", _LIST),
    Skip(r"list_move", _LIST),
    Skip(r"list_splice", _LIST),
    Skip(r"^__?hlist_(?:add|del)", _LIST),
    Skip(r"^_?_?rhashtable_|^rht_", _HASH),
    Skip(r"^rb_erase", _TREE),
    Skip(r"^rb_insert", _TREE),
    Skip(r"^__rb_", _TREE),
    Skip(r"^rb_(?:first|last|next|prev)(?:_postorder)?$|^rb_replace_node", _TREE),
    # Reference counts.
    Skip(r"refcount_(?:add|sub|inc|dec|set|read|warn)", _REFCOUNT),
    Skip(r"^_?_?atomic_", _REFCOUNT),
    Skip(r"^arch_atomic", _REFCOUNT),
    Skip(r"^kref_(?:get|put)", _REFCOUNT),
    Skip(r"^__refcount_|^percpu_ref_(?:get|put|tryget)", _REFCOUNT),
    Skip(r"^dput$", _REFCOUNT),
    Skip(r"^fast_dput$", _REFCOUNT),
    Skip(r"^iput$|^iput_final$", _REFCOUNT),
    Skip(r"^ref_tracker", _REFCOUNT),
    Skip(r"^ida_free$", _REFCOUNT),
    # Pages.
    Skip(r"^_?compound_head$", _PAGE),
    Skip(r"^folio_unlock$|^unlock_page$", _PAGE),
    # skb.
    Skip(r"kfree_skb", _SKB),
    Skip(r"^skb_push$", _SKB),
    Skip(r"^skb_under_panic", _SKB),
    Skip(r"^skb_over_panic|^skb_panic$", _SKB),
    Skip(r"^skb_put$|^__skb_put", _SKB),
    Skip(r"^skb_pull$|^__skb_pull$|^__pskb_pull_tail$|^pskb_expand_head$", _SKB),
    # Not __alloc_skb/__netdev_alloc_skb: syzkaller (pkg/report) titles name the skb
    # allocation (it is where a sleeping allocation from atomic context is made).
    Skip(r"^skb_copy_bits$|^skb_clone$", _SKB),
    # Workqueues and timers.
    Skip(r"flush_work", _WQ),
    Skip(r"__cancel_work_timer", _WQ),
    Skip(r"cancel_work_sync", _WQ),
    Skip(r"try_to_grab_pending", _WQ),
    Skip(r"^_?_?flush_workqueue", _WQ),
    Skip(r"drain_workqueue", _WQ),
    Skip(r"destroy_workqueue", _WQ),
    Skip(r"^__queue_work$|^queue_work_on$|^__queue_delayed_work$|^insert_work$", _WQ),
    Skip(r"^queue_delayed_work_on$|^mod_delayed_work_on$", _WQ),
    Skip(r"kthread_stop", _WQ),
    Skip(r"del_timer", _TIMER),
    Skip(r"timer_is_static_object", _TIMER),
    Skip(r"work_is_static_object", _TIMER),
    Skip(r"^timer_delete(?:_sync)?$|^__timer_delete", _TIMER),
    Skip(r"^_?_?mod_timer$|^add_timer(?:_on|_global)?$|^hrtimer_start_range_ns$", _TIMER),
    # Waiting.
    Skip(r"^_?_?wake_up", _WAIT),
    Skip(r"finish_wait", _WAIT),
    Skip(r"^complete$", _WAIT),
    Skip(r"wait_for_completion", _WAIT),
    # Driver-model and USB plumbing.
    Skip(r"debug_object", _DEBUG),
    Skip(r"kobject_del", _DEVICE),
    Skip(r"kobject_put", _DEVICE),
    Skip(r"kobject_uevent_env", _DEVICE),
    Skip(r"add_uevent_var", _DEVICE),
    Skip(r"get_device_parent", _DEVICE),
    Skip(r"^device_add$", _DEVICE),
    Skip(r"^device_del$", _DEVICE),
    Skip(r"device_unregister", _DEVICE),
    Skip(r"device_destroy", _DEVICE),
    Skip(r"device_release", _DEVICE),
    Skip(r"devres_release_all", _DEVICE),
    Skip(r"hwrng_unregister", _DEVICE),
    Skip(r"i2c_del_adapter", _DEVICE),
    Skip(r"__unregister_client", _DEVICE),
    Skip(r"device_for_each_child", _DEVICE),
    Skip(r"rollback_registered", _DEVICE),
    Skip(r"unregister_netdev", _DEVICE),
    Skip(r"sysfs_remove", _DEVICE),
    Skip(r"device_remove_file", _DEVICE),
    Skip(r"tty_unregister_device", _DEVICE),
    Skip(r"dummy_urb_enqueue", _USB),
    Skip(r"usb_kill_urb", _USB),
    Skip(r"usb_kill_anchored_urbs", _USB),
    Skip(r"usb_control_msg", _USB),
    Skip(r"usb_hcd_submit_urb", _USB),
    Skip(r"usb_submit_urb", _USB),
    # Rust.
    Skip(r"^rust_helper_|^rust_begin_unwind$|^rust_panic", _RUST),
    # Misc.
    Skip(r"^__raw_(?:read|write)[bwlq]$|^(?:read|write)[bwlq](?:_relaxed)?$", _IO),
    Skip(r"^logic_(?:in|out)[bwl]$|^io(?:read|write)(?:8|16|32|64)(?:be)?$", _IO),
    Skip(r"_indirect_thunk_", _RETPOLINE),
)

# Source files a report never blames (`Report.guilty_file`): headers, libraries and
# the machinery above; the first file named outside them is the guilty one.
_HEADER = "a header: inline helpers, the caller's file is the real place"
GUILTY_FILE_IGNORES: tuple[Skip, ...] = (
    Skip(r".*\.h$", _HEADER),
    Skip(r"^lib/|^virt/lib/", "generic library code"),
    Skip(r"^mm/kasan/|^mm/kmsan/|^kernel/kcov\.c", _SANITIZER),
    Skip(r"^mm/sl.b\.c|^mm/percpu|^mm/vmalloc\.c|^mm/page_alloc\.c|^mm/util\.c", _ALLOC),
    Skip(r"^mm/memory\.c|^arch/.*/mm/fault\.c", _FAULT),
    Skip(r"^kernel/rcu/", "RCU machinery: it runs the callbacks and detects the stalls"),
    Skip(r"^arch/.*/kernel/traps\.c", _WARN),
    Skip(r"^kernel/locking/", _LOCK),
    Skip(r"^kernel/panic\.c|^kernel/printk/", _REPORT),
    Skip(r"^kernel/softirq\.c|^kernel/kthread\.c|^kernel/sched/", "scheduling and irq plumbing"),
    Skip(r"^kernel/time/timer\.c", _TIMER),
    Skip(r"^kernel/workqueue\.c", _WQ),
)


def compile_skips(skips: tuple[Skip, ...]) -> re.Pattern[str]:
    """One regex searching for any of the patterns."""
    return re.compile("|".join(f"(?:{s.pattern})" for s in skips))
