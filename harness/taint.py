"""The kernel's taint bits (/proc/sys/kernel/tainted) as the letters dmesg prints."""

from __future__ import annotations

# bit -> (letter, meaning), in the kernel's order (Documentation/admin-guide/tainted-kernels).
TAINT_FLAGS: tuple[tuple[str, str], ...] = (
    ("P", "proprietary module loaded"),
    ("F", "module force-loaded"),
    ("S", "kernel running on an out-of-spec system"),
    ("R", "module force-unloaded"),
    ("M", "machine check exception"),
    ("B", "bad page referenced or unexpected page flags"),
    ("U", "taint requested by user space"),
    ("D", "kernel died recently (OOPS or BUG)"),
    ("A", "ACPI table overridden"),
    ("W", "kernel issued a warning"),
    ("C", "staging driver loaded"),
    ("I", "firmware bug workaround"),
    ("O", "out-of-tree module loaded"),
    ("E", "unsigned module loaded"),
    ("L", "soft lockup occurred"),
    ("K", "kernel live-patched"),
    ("X", "auxiliary taint"),
    ("T", "built with struct randomization"),
    ("N", "in-kernel test run"),
)


def describe(value: int) -> list[dict[str, str | int]]:
    """The set bits of a taint value, each with its letter and meaning."""
    found: list[dict[str, str | int]] = []
    for bit, (letter, meaning) in enumerate(TAINT_FLAGS):
        if value & (1 << bit):
            found.append({"bit": bit, "flag": letter, "meaning": meaning})
    for bit in range(len(TAINT_FLAGS), 64):
        if value & (1 << bit):
            found.append({"bit": bit, "flag": "?", "meaning": "unknown taint bit"})
    return found


def new_taint(before: int | None, after: int | None) -> list[dict[str, str | int]]:
    """Taint bits set after the workload that were not set before it."""
    if before is None or after is None:
        return []
    return describe(after & ~before)
