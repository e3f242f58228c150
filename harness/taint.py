"""The kernel's taint bits (/proc/sys/kernel/tainted) as the letters dmesg prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class TaintFlag:
    bit: int
    flag: str  # the letter dmesg prints; "?" for a bit the table does not know
    meaning: str

    def to_json(self) -> dict[str, Any]:
        return {"bit": self.bit, "flag": self.flag, "meaning": self.meaning}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaintFlag:
        return cls(int(data["bit"]), str(data["flag"]), str(data["meaning"]))


def describe(value: int) -> list[TaintFlag]:
    """The set bits of a taint value, each with its letter and meaning."""
    found: list[TaintFlag] = []
    for bit, (letter, meaning) in enumerate(TAINT_FLAGS):
        if value & (1 << bit):
            found.append(TaintFlag(bit, letter, meaning))
    for bit in range(len(TAINT_FLAGS), 64):
        if value & (1 << bit):
            found.append(TaintFlag(bit, "?", "unknown taint bit"))
    return found


def new_taint(before: int | None, after: int | None) -> list[TaintFlag]:
    """Taint bits set after the workload that were not set before it."""
    if before is None or after is None:
        return []
    return describe(after & ~before)


@dataclass(frozen=True)
class TaintChange:
    """The kernel's taint before and after the workload (None: not read)."""

    before: int | None = None
    after: int | None = None

    @property
    def new(self) -> list[TaintFlag]:
        return new_taint(self.before, self.after)

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after,
                "new": [t.to_json() for t in self.new]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaintChange:
        return cls(data.get("before"), data.get("after"))
