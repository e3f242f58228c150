"""File:line for the frames of crash reports, from the kernel's vmlinux: what the
kernel's `scripts/decode_stacktrace.sh` does, for all reports of a log at once.

A frame `func+0xoff/0xsize` is looked up in the vmlinux symbol table (`nm -n` of the
arch's binutils), its address (symbol + offset) handed to `addr2line -f -i` (one call
for a whole log, inlined functions included), and each path cut to the kernel tree.
Anything missing (the tool, line info, a symbol) leaves the reports as they were and
says why in a note, never an exception: a run's result must not depend on it.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .arches import ARCHES, Arch, get_arch
from .errors import HarnessError, UsageError
from .inputs import regular_file
from .kernel_log import LogAnalysis, Report
from .kernel_log.symbols import FrameRef, SourceLocation, SymbolizedFrame, frame_refs
from .proc import run

log = logging.getLogger(__name__)

TIMEOUT = 60.0
"""Seconds nm or addr2line may take: a tinyconfig vmlinux takes about one."""
_CHUNK = 1000  # addresses per addr2line call: argv stays far below the kernel's limit

# Every kernel has start_kernel in init/main.c: its path in the debug info shows where
# the tree was when the kernel was built, which is cut from every path.
ROOT_SYMBOL, ROOT_FILE = "start_kernel", "init/main.c"
# The top directories of a kernel tree. A path whose component at the tree root's depth
# is one of them is in a tree too: ccache (tuxmake sets CCACHE_NOHASHDIR) hands out
# objects compiled in an earlier build's directory, and so their paths.
KERNEL_TOP_DIRS = frozenset({
    "arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring",
    "ipc", "kernel", "lib", "mm", "net", "rust", "samples", "security", "sound", "virt",
})
_TEXT_TYPES = frozenset("TtWw")  # nm types of code symbols: what stack frames name


@dataclass(frozen=True)
class Outcome:
    """The reports with their frames located, and one line saying what was done."""

    reports: tuple[Report, ...]
    note: str


def vmlinux_arch(path: Path) -> Arch:
    """The arch of a vmlinux from its ELF header; UsageError if it is not one of ours."""
    try:
        with path.open("rb") as f:
            head = f.read(20)
    except OSError as e:
        raise UsageError(f"vmlinux {path}: cannot read it ({e.strerror or e})") from None
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise UsageError(f"vmlinux {path}: not an ELF file; give the kernel build's vmlinux")
    machine = int.from_bytes(head[18:20], "little")
    for arch in ARCHES.values():
        if arch.elf_machine == machine:
            return arch
    raise UsageError(f"vmlinux {path}: ELF machine {machine} is not an arch we boot")


def symbolizer_for(vmlinux: Path, arch_name: str | None = None) -> Symbolizer:
    """A symbolizer for a vmlinux given by the user: its arch read from the file, and
    checked against `arch_name` when one is given."""
    wanted = None if arch_name is None else get_arch(arch_name)  # a bad name before the file
    vmlinux = regular_file(vmlinux, "--vmlinux", "give the kernel build's vmlinux")
    arch = vmlinux_arch(vmlinux)
    if wanted is not None and wanted != arch:
        raise UsageError(f"vmlinux {vmlinux} is for {arch.name}, not {arch_name}")
    return Symbolizer(vmlinux, arch)


class Symbolizer:
    """Looks up the frames of reports in one vmlinux with the arch's binutils."""

    def __init__(self, vmlinux: Path, arch: Arch, timeout: float = TIMEOUT) -> None:
        self.vmlinux = vmlinux
        self.arch = arch
        self.timeout = timeout

    def _tool(self, name: str) -> str:
        return self.arch.cross_compile + name

    def _package(self) -> str:
        return "binutils-" + self.arch.cross_compile.rstrip("-").replace("_", "-")

    def symbolize(self, reports: Sequence[Report]) -> Outcome:
        """`reports` with `symbolized` filled in; unchanged, and a note, when it fails."""
        refs = [frame_refs(r.lines) for r in reports]
        if not any(refs):
            return Outcome(tuple(reports), "")
        try:
            table = SymbolTable(self._nm())
            wanted = {ref: a for rs in refs for ref in rs if (a := table.address(ref)) is not None}
            root = table.address_of(ROOT_SYMBOL)
            found = self._addr2line({*wanted.values(), *([root] if root is not None else [])})
        except (HarnessError, OSError) as e:  # a missing tool, a timeout, a failing command
            return Outcome(tuple(reports), f"not symbolized: {e}".splitlines()[0])
        if not any(_split_location(w) for pairs in found.values() for _, w in pairs):
            return Outcome(tuple(reports), f"not symbolized: {self.vmlinux} has no line info "
                                           "(build it with CONFIG_DEBUG_INFO)")
        tree = tree_root(found.get(root, []) if root is not None else [])
        out: list[Report] = []
        located = 0
        for report, rs in zip(reports, refs, strict=True):
            frames = [_frame(ref, found.get(wanted[ref], []), tree) for ref in rs
                      if ref in wanted]
            kept = tuple(f for f in frames if f is not None)
            located += len(kept)
            out.append(replace(report, symbolized=kept))
        total = sum(len(rs) for rs in refs)
        if not located:
            return Outcome(tuple(out), f"not symbolized: no frame of the log matches "
                                       f"{self.vmlinux} (is it the kernel that wrote it?)")
        return Outcome(tuple(out), f"{located} of {total} frames located in {self.vmlinux}")

    def _nm(self) -> str:
        # "--": a file named like an option (--version) is still the file to read.
        argv = [self._tool("nm"), "-n", "--defined-only", "--", str(self.vmlinux)]
        return run(argv, timeout=self.timeout, package=self._package()).stdout

    def _addr2line(self, addresses: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
        found: dict[int, list[tuple[str, str]]] = {}
        ordered = sorted(addresses)
        for i in range(0, len(ordered), _CHUNK):
            argv = [self._tool("addr2line"), "-e", str(self.vmlinux), "-a", "-f", "-i",
                    *(f"{a:#x}" for a in ordered[i:i + _CHUNK])]
            out = run(argv, timeout=self.timeout, package=self._package()).stdout
            found.update(parse_addr2line(out))
        return found


class SymbolTable:
    """Code symbols of a vmlinux from `nm -n`, with sizes as kallsyms reckons them: the
    distance to the next symbol (padding included, unlike the ELF size)."""

    def __init__(self, nm_output: str) -> None:
        entries: list[tuple[int, str]] = []
        for line in nm_output.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in _TEXT_TYPES:
                try:
                    entries.append((int(parts[0], 16), parts[2]))
                except ValueError:
                    continue
        entries.sort()
        self._by_name: dict[str, list[tuple[int, int]]] = {}
        upper: int | None = None  # the next higher address (aliases share a size)
        previous: int | None = None
        for address, name in reversed(entries):
            if previous is not None and address < previous:
                upper = previous
            size = upper - address if upper is not None else 0
            self._by_name.setdefault(name, []).append((address, size))
            previous = address

    def address_of(self, name: str) -> int | None:
        found = self._by_name.get(name, [])
        return found[0][0] if len(found) == 1 else None

    def address(self, ref: FrameRef) -> int | None:
        """Where a frame points, or None: a module's symbol, an unknown one, one whose
        size differs from the log's (another kernel's vmlinux: its lines would be wrong),
        or a name several functions of one size share. As scripts/faddr2line decides."""
        if ref.module is not None:
            return None
        found = [f for f in self._by_name.get(ref.symbol, []) if f[1] == ref.size]
        if len(found) != 1:
            return None
        # A return address is the instruction after the call, which may belong to the
        # next statement (or, after a call that never returns, to the next function):
        # one byte back is inside the call itself, the line a debugger shows for a caller.
        back = 0 if ref.exact or ref.offset == 0 else 1
        return found[0][0] + ref.offset - back


def parse_addr2line(text: str) -> dict[int, list[tuple[str, str]]]:
    """`addr2line -a -f -i` output: for each address, (function, file:line) pairs, the
    innermost inlined function first. Addresses come as `0x...` lines, each followed by
    function and location lines in pairs (a function name never starts with 0x)."""
    found: dict[int, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    function: str | None = None
    for line in text.splitlines():
        if function is None and line.startswith("0x"):
            try:
                current = found.setdefault(int(line, 16), [])
            except ValueError:
                current = None
            continue
        if current is None:
            continue
        if function is None:
            function = line.strip()
        else:
            current.append((function, line.strip()))
            function = None
    return found


def _split_location(text: str) -> tuple[str, int] | None:
    """`file:line (discriminator N)` as (file, line); None for `??:0` and `??:?`."""
    text = text.split(" (discriminator", 1)[0]
    path, _, number = text.rpartition(":")
    if not path or path == "??" or not number.isdigit() or int(number) == 0:
        return None
    return path, int(number)


def tree_root(pairs: Sequence[tuple[str, str]]) -> str | None:
    """The kernel tree's root (ending in /) from start_kernel's location."""
    for _, where in pairs:
        split = _split_location(where)
        if split is not None:
            path = posixpath.normpath(split[0])
            if path.endswith("/" + ROOT_FILE):
                return path[: -len(ROOT_FILE)]
    return None


def source_path(path: str, root: str | None) -> str:
    """`path` relative to the kernel tree: under `root`, or under a root that differs from
    it in one directory (another build's) and holds a top directory of a tree there;
    else the path, normalized (a compiler header, say)."""
    path = posixpath.normpath(path)
    if root is None:
        return path
    if path.startswith(root):
        return path[len(root):]
    parts, root_parts = path.split("/"), root.rstrip("/").split("/")
    depth = len(root_parts)
    if len(parts) > depth and parts[depth] in KERNEL_TOP_DIRS:
        differing = sum(a != b for a, b in zip(parts[:depth], root_parts, strict=True))
        if differing <= 1:
            return "/".join(parts[depth:])
    return path


def _frame(ref: FrameRef, pairs: Sequence[tuple[str, str]],
           root: str | None) -> SymbolizedFrame | None:
    locations: list[SourceLocation] = []
    for function, where in pairs:
        split = _split_location(where)
        if split is not None:
            name = ref.symbol if function == "??" else function
            locations.append(SourceLocation(name, source_path(split[0], root), split[1]))
    if not locations:
        return None
    return SymbolizedFrame(ref.line, ref.text, ref.reliable, tuple(locations))


def symbolize_analysis(analysis: LogAnalysis, symbolizer: Symbolizer) -> tuple[LogAnalysis, str]:
    """The analysis with its reports symbolized, and the symbolizer's note."""
    outcome = symbolizer.symbolize(analysis.reports)
    return LogAnalysis(list(outcome.reports), analysis.events), outcome.note


def symbolize_reports(reports: Sequence[Report], vmlinux: Path | None,
                      arch: Arch) -> Outcome:
    """A run's reports symbolized with its kernel's vmlinux, when the kernel has one known
    (our builds keep it); the reports as they are otherwise."""
    if vmlinux is None or not reports:
        return Outcome(tuple(reports), "")
    if not vmlinux.is_file():
        return Outcome(tuple(reports), f"not symbolized: {vmlinux} is gone")
    outcome = Symbolizer(vmlinux, arch).symbolize(reports)
    if outcome.note.startswith("not symbolized"):
        log.warning("%s", outcome.note)
    return outcome
