"""Symbolized reports: frames read from a report's lines, looked up in a symbol table,
located by addr2line (fakes, and the real tool on a small ELF laid out like a kernel
tree), paths cut to the tree, and every missing piece a note instead of a traceback."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from harness import cli, kernel_log, symbolize
from harness.arches import get_arch
from harness.errors import UsageError
from harness.kernel.image import KernelImage, image_from_path
from harness.kernel_log import Report
from harness.kernel_log.frames import frame_of
from harness.kernel_log.symbols import (
    FrameRef,
    SourceLocation,
    SymbolizedFrame,
    frame_refs,
    location_of,
    stack_lines,
)
from harness.symbolize import Symbolizer, SymbolTable, parse_addr2line, source_path

X86_REPORT = """\
WARNING: CPU: 0 PID: 1 at mm/foo.c:5 leaf+0x6/0x10
Modules linked in:
CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
RIP: 0010:leaf+0x6/0x10
RSP: 0018:ffffc90000013e48 EFLAGS: 00010246
Call Trace:
 <TASK>
 ? leaf+0x6/0x10
 caller+0x5/0x10
 start_kernel+0x16/0x20
 mod_fn+0x3/0x8 [some_mod]
 </TASK>
---[ end trace 0000000000000000 ]---
"""


def test_frame_refs_tell_the_pc_from_return_addresses() -> None:
    refs = frame_refs(X86_REPORT.splitlines())
    assert [r.text for r in refs] == ["leaf+0x6/0x10", "leaf+0x6/0x10", "leaf+0x6/0x10",
                                      "caller+0x5/0x10", "start_kernel+0x16/0x20",
                                      "mod_fn+0x3/0x8"]
    # The WARNING header and the RIP line name the pc, and so does its first repeat.
    assert [r.exact for r in refs] == [True, True, True, False, False, False]
    assert [r.reliable for r in refs] == [True, True, False, True, True, True]
    assert refs[-1].module == "some_mod" and refs[1].line == 3


def test_frame_refs_arm64_trace_starts_with_the_pc() -> None:
    lines = ["pc : lkdtm_WARNING+0x1c/0x40", "lr : lkdtm_do_action+0x24/0x48",
             "Call trace:", " lkdtm_WARNING+0x1c/0x40", " lkdtm_do_action+0x24/0x48",
             " direct_entry.part.0+0xe8/0x100"]
    refs = frame_refs(lines)
    assert [(r.symbol, r.exact) for r in refs] == [
        ("lkdtm_WARNING", True), ("lkdtm_do_action", False), ("lkdtm_WARNING", True),
        ("lkdtm_do_action", False), ("direct_entry.part.0", False)]


NM = """\
ffffffff81000000 T _stext
ffffffff81000000 T alias_of_stext
ffffffff81000040 t dup
ffffffff81000060 t dup
ffffffff81000100 T caller
ffffffff81000100 W caller_alias
ffffffff81000180 D some_data
ffffffff81000200 T last
ffffffff81000200 A not_code
                 U undefined
"""


def test_symbol_table_sizes_as_kallsyms_counts_them() -> None:
    table = SymbolTable(NM)

    def ref(symbol: str, offset: int, size: int, exact: bool = False,
            module: str | None = None) -> FrameRef:
        return FrameRef(0, symbol, offset, size, module, exact, True)

    # Sizes run to the next symbol's address, aliases share one.
    assert table.address(ref("alias_of_stext", 0x10, 0x40, exact=True)) == 0xFFFFFFFF81000010
    # A return address is looked up one byte back; offset 0 cannot be a return address.
    # Data symbols are no frames' and do not end a function.
    assert table.address(ref("caller", 0x10, 0x100)) == 0xFFFFFFFF8100010F
    assert table.address(ref("caller", 0, 0x100)) == 0xFFFFFFFF81000100
    # Two static functions of one name: the size tells them apart, else no guess.
    assert table.address(ref("dup", 4, 0x20, exact=True)) == 0xFFFFFFFF81000044
    assert table.address(ref("dup", 4, 0xA0, exact=True)) == 0xFFFFFFFF81000064
    assert table.address(ref("dup", 4, 0x99, exact=True)) is None
    # A size the vmlinux does not have: another kernel's frame, not looked up at all.
    assert table.address(ref("caller", 0x10, 0x80)) is None
    assert table.address(ref("caller", 4, 0x100, module="mod")) is None  # not in vmlinux
    assert table.address(ref("no_such", 4, 0x80)) is None
    assert table.address(ref("some_data", 0, 0x80)) is None  # not code
    assert table.address_of("last") == 0xFFFFFFFF81000200


def test_parse_addr2line_inlines_discriminators_and_unknowns() -> None:
    out = textwrap.dedent("""\
        0x0000000000401000
        helper
        /t/src/build/../mm/../include/h.h:3
        leaf
        /t/src/build/../mm/foo.c:5 (discriminator 2)
        0x000000000000dead
        ??
        ??:0
        """)
    found = parse_addr2line(out)
    assert found[0x401000] == [("helper", "/t/src/build/../mm/../include/h.h:3"),
                               ("leaf", "/t/src/build/../mm/foo.c:5 (discriminator 2)")]
    assert found[0xDEAD] == [("??", "??:0")]


def test_paths_are_cut_to_the_tree() -> None:
    root = "/cache/kbuild/.k.tmp-1-a/work/src/"
    assert source_path(root + "build/../mm/foo.c", root) == "mm/foo.c"
    # An object ccache compiled in an earlier build's directory: the same depth.
    assert source_path("/cache/kbuild/.j.tmp-9-z/work/src/build/../mm/oom_kill.c",
                       root) == "mm/oom_kill.c"
    assert source_path("/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h",
                       root) == "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h"
    assert source_path("/a/b/../c.c", None) == "/a/c.c"


def _frame(line: int, frame: str, *locs: tuple[str, str, int],
           reliable: bool = True) -> SymbolizedFrame:
    return SymbolizedFrame(line, frame, reliable, tuple(SourceLocation(*x) for x in locs))


def test_stack_lines_read_back_by_the_parser_and_the_guilty_location() -> None:
    frames = [
        _frame(3, "leaf+0x6/0x10", ("helper", "include/h.h", 3), ("leaf", "mm/foo.c", 5)),
        _frame(7, "caller+0x5/0x10", ("caller", "mm/foo.c", 10)),
        _frame(8, "junk+0x1/0x2", ("junk", "mm/j.c", 1), reliable=False),
    ]
    lines = stack_lines(frames)
    assert lines == ["helper include/h.h:3 [inline]", "leaf+0x6/0x10 mm/foo.c:5",
                     "caller+0x5/0x10 mm/foo.c:10", "? junk+0x1/0x2 mm/j.c:1"]
    assert [frame_of(ln) for ln in lines[:3]] == ["helper", "leaf", "caller"]
    assert location_of(frames, "helper") == SourceLocation("helper", "include/h.h", 3)
    assert location_of(frames, "leaf") == SourceLocation("leaf", "mm/foo.c", 5)
    assert location_of(frames, "junk") is None  # a guess is not blamed
    assert location_of(frames, None) is None


def test_symbolized_report_survives_json() -> None:
    report = kernel_log.parse(X86_REPORT).reports[0]
    frames = (_frame(3, "leaf+0x6/0x10", ("helper", "include/h.h", 3),
                     ("leaf", "mm/foo.c", 5)),)
    done = replace(report, symbolized=frames)
    assert Report.from_dict(done.to_dict()) == done
    old = report.to_dict()
    del old["symbolized"]  # a result.json written before reports were symbolized
    assert Report.from_dict(old) == report


# --- the tools: fakes, then the real binutils ----------------------------------------


def _fake_tools(tmp_path: Path, nm: str, addr2line: str) -> str:
    """A cross prefix whose nm and addr2line print fixed text (and log their argv)."""
    for name, text in (("nm", nm), ("addr2line", addr2line)):
        script = tmp_path / f"fake-{name}"
        (tmp_path / f"{name}.out").write_text(text)
        script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/{name}.argv\n'
                          f"cat {tmp_path}/{name}.out\n")
        script.chmod(0o755)
    return f"{tmp_path}/fake-"


FAKE_NM = """\
0000000000401000 T leaf
0000000000401010 T caller
0000000000401020 T start_kernel
0000000000401040 T end
"""
FAKE_A2L = """\
0x0000000000401006
leaf
/b/.x/work/src/build/../mm/foo.c:5
0x0000000000401014
caller
/b/.y/work/src/build/../mm/foo.c:10
0x0000000000401020
start_kernel
/b/.x/work/src/build/../init/main.c:1
0x0000000000401035
start_kernel
/b/.x/work/src/build/../init/main.c:3
"""


def test_symbolizer_with_fake_tools(tmp_path: Path) -> None:
    arch = replace(get_arch("x86_64"), cross_compile=_fake_tools(tmp_path, FAKE_NM, FAKE_A2L))
    analysis = kernel_log.parse(X86_REPORT)
    outcome = Symbolizer(tmp_path / "vmlinux", arch).symbolize(analysis.reports)
    frames = outcome.reports[0].symbolized
    assert [(f.frame, str(f.location)) for f in frames] == [
        ("leaf+0x6/0x10", "mm/foo.c:5"), ("leaf+0x6/0x10", "mm/foo.c:5"),
        ("leaf+0x6/0x10", "mm/foo.c:5"), ("caller+0x5/0x10", "mm/foo.c:10"),
        ("start_kernel+0x16/0x20", "init/main.c:3")]
    assert outcome.note == f"5 of 6 frames located in {tmp_path / 'vmlinux'}"
    # One addr2line call for the whole log, the pc exact and return addresses - 1.
    calls = (tmp_path / "addr2line.argv").read_text().splitlines()
    assert len(calls) == 1
    assert calls[0].split()[-4:] == ["0x401006", "0x401014", "0x401020", "0x401035"]


def test_no_line_info_missing_tool_and_failures_are_notes(tmp_path: Path) -> None:
    reports = kernel_log.parse(X86_REPORT).reports
    no_lines = "0x0000000000401006\nleaf\n??:0\n"
    arch = replace(get_arch("x86_64"), cross_compile=_fake_tools(tmp_path, FAKE_NM, no_lines))
    outcome = Symbolizer(tmp_path / "vmlinux", arch).symbolize(reports)
    assert outcome.reports == tuple(reports)
    assert "has no line info (build it with CONFIG_DEBUG_INFO)" in outcome.note
    missing = replace(get_arch("aarch64"), cross_compile=str(tmp_path / "none-"))
    outcome = Symbolizer(tmp_path / "vmlinux", missing).symbolize(reports)
    assert outcome.reports == tuple(reports)
    assert outcome.note.startswith("not symbolized:") and "none-nm" in outcome.note
    assert "\n" not in outcome.note
    # A log of another kernel: its sizes match nothing.
    other = kernel_log.parse(X86_REPORT.replace("/0x10", "/0x11").replace("/0x20", "/0x21"))
    arch = replace(get_arch("x86_64"), cross_compile=_fake_tools(tmp_path, FAKE_NM, FAKE_A2L))
    outcome = Symbolizer(tmp_path / "vmlinux", arch).symbolize(other.reports)
    assert "no frame of the log matches" in outcome.note
    assert outcome.reports[0].symbolized == ()
    # No frames at all: nothing to run, nothing to say.
    assert Symbolizer(tmp_path / "vmlinux", missing).symbolize([]).note == ""
    # A run's kernel without a vmlinux, or one removed since.
    assert symbolize.symbolize_reports(reports, None, arch).reports == tuple(reports)
    gone = symbolize.symbolize_reports(reports, tmp_path / "gone", arch)
    assert gone.note == f"not symbolized: {tmp_path / 'gone'} is gone"


def test_vmlinux_arch_from_the_elf_header(tmp_path: Path) -> None:
    elf = bytearray(64)
    elf[:4] = b"\x7fELF"
    elf[18:20] = (183).to_bytes(2, "little")
    (tmp_path / "vmlinux").write_bytes(bytes(elf))
    assert symbolize.vmlinux_arch(tmp_path / "vmlinux").name == "aarch64"
    with pytest.raises(UsageError, match="is for aarch64, not x86_64"):
        symbolize.symbolizer_for(tmp_path / "vmlinux", "x86_64")
    (tmp_path / "text").write_text("not an elf")
    with pytest.raises(UsageError, match="not an ELF file"):
        symbolize.vmlinux_arch(tmp_path / "text")
    with pytest.raises(UsageError, match="cannot read it"):
        symbolize.vmlinux_arch(tmp_path / "missing")


def test_kernel_image_knows_its_vmlinux(tmp_path: Path) -> None:
    boot = tmp_path / "build" / "arch" / "x86" / "boot"
    boot.mkdir(parents=True)
    image = boot / "bzImage"
    data = bytearray(0x400)
    data[0x202:0x206] = b"HdrS"
    image.write_bytes(bytes(data))
    (tmp_path / "build" / "vmlinux").write_bytes(b"\x7fELF")
    found = image_from_path(image, get_arch("x86_64"))
    assert found.vmlinux == tmp_path / "build" / "vmlinux"
    assert KernelImage.from_dict(found.to_dict()) == found


# A small ELF laid out as our kernel builds are: sources in work/src, compiled from
# work/src/build with `..` paths, start_kernel in init/main.c, an inline helper.
SOURCES = {
    "include/h.h": "static inline int helper(int *p)\n{\n\treturn *p + 1;\n}\n",
    "mm/foo.c": textwrap.dedent("""\
        #include "../include/h.h"
        int sink;
        __attribute__((noinline)) int leaf(int *p)
        {
        \tsink = helper(p);
        \treturn sink * 3;
        }
        __attribute__((noinline)) int caller(int *p)
        {
        \tint r = leaf(p);
        \treturn r + 2;
        }
        """),
    # The last function only ends start_kernel (kallsyms counts a size to the next one).
    "init/main.c": "int caller(int *p);\nint start_kernel(void)\n{\n\tint x = 1;\n"
                   "\treturn caller(&x);\n}\nvoid end_of_text(void)\n{\n}\n",
}


@pytest.fixture(scope="module")
def small_vmlinux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if platform.machine() != "x86_64" or shutil.which("gcc") is None \
            or shutil.which("x86_64-linux-gnu-addr2line") is None:
        pytest.skip("needs gcc and binutils on an x86_64 host")
    src = tmp_path_factory.mktemp("kbuild") / "work" / "src"
    for name, text in SOURCES.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    build = src / "build"
    build.mkdir()
    objects = []
    for name in ("mm/foo.c", "init/main.c"):
        obj = name.replace("/", "_") + ".o"
        subprocess.run(["gcc", "-O2", "-g", "-fno-pie", "-c", f"../{name}", "-o", obj],
                       cwd=build, check=True)
        objects.append(obj)
    subprocess.run(["ld", "-e", "start_kernel", "-o", "vmlinux", *objects], cwd=build,
                   check=True)
    return build / "vmlinux"


def _report_for(vmlinux: Path) -> str:
    """A WARNING in leaf(), with each frame's offset and kallsyms size from the ELF."""
    nm = subprocess.run(["nm", "-n", str(vmlinux)], capture_output=True, text=True,
                        check=True).stdout
    addresses = {p[2]: int(p[0], 16) for ln in nm.splitlines()
                 if len(p := ln.split()) == 3 and p[1] in "Tt"}
    order = sorted(addresses.items(), key=lambda kv: kv[1])
    size = {name: (order[i + 1][1] - a) if i + 1 < len(order) else 0x10
            for i, (name, a) in enumerate(order)}
    objdump = subprocess.run(["objdump", "-d", str(vmlinux)], capture_output=True, text=True,
                             check=True).stdout
    # The return address in caller: the instruction after its call to leaf.
    lines = objdump.splitlines()
    call = next(i for i, ln in enumerate(lines) if "call" in ln and "<leaf>" in ln
                and int(ln.split(":")[0], 16) < addresses["start_kernel"])
    ret = int(lines[call + 1].split(":")[0], 16) - addresses["caller"]
    # The pc: the instruction before the store to `sink`, helper()'s `+ 1`, inlined.
    store = next(i for i, ln in enumerate(lines) if "<sink>" in ln)
    pc = int(lines[store - 1].split(":")[0], 16) - addresses["leaf"]
    return X86_REPORT.replace("leaf+0x6/0x10", f"leaf+{pc:#x}/{size['leaf']:#x}").replace(
        "caller+0x5/0x10", f"caller+{ret:#x}/{size['caller']:#x}")


def test_real_addr2line_on_a_small_elf(small_vmlinux: Path) -> None:
    reports = kernel_log.parse(_report_for(small_vmlinux)).reports
    outcome = symbolize.symbolizer_for(small_vmlinux).symbolize(reports)
    frames = outcome.reports[0].symbolized
    pc = next(f for f in frames if f.reliable and f.line == 3)  # the RIP line
    assert [str(loc) for loc in pc.locations] == ["include/h.h:3", "mm/foo.c:5"]
    assert [loc.function for loc in pc.locations] == ["helper", "leaf"]
    # The return address into caller names the call's line (10), not the next one (11).
    ret = next(f for f in frames if f.frame.startswith("caller"))
    assert str(ret.location) == "mm/foo.c:10"
    start = next(f for f in frames if f.frame.startswith("start_kernel"))
    assert str(start.location) == "init/main.c:5"


def test_parse_log_vmlinux(small_vmlinux: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "console.log"
    log.write_text(_report_for(small_vmlinux))
    assert cli.main(["parse-log", str(log), "--vmlinux", str(small_vmlinux)]) == 1
    out = capsys.readouterr().out
    assert "stack (guilty: mm/foo.c:5):" in out
    assert "helper include/h.h:3 [inline]" in out
    assert cli.main(["parse-log", str(log), "--vmlinux", str(small_vmlinux),
                     "--arch", "aarch64"]) == 2
    assert "is for x86_64, not aarch64" in capsys.readouterr().err
    assert cli.main(["parse-log", str(log), "--arch", "x86_64"]) == 2
    assert cli.main(["parse-log", str(log), "--vmlinux", str(log)]) == 2
    assert cli.main(["parse-log", str(log), "--vmlinux", str(small_vmlinux),
                     "--json", str(tmp_path / "out.json")]) == 1
    assert '"file": "mm/foo.c"' in (tmp_path / "out.json").read_text()


def test_a_run_of_a_kernel_with_a_vmlinux_writes_located_frames(
        small_vmlinux: Path, tmp_path: Path) -> None:
    from harness import run
    from harness.cli.commands import _summary
    from harness.kernel.image import ResolvedKernel

    (tmp_path / "console.log").write_text(_report_for(small_vmlinux))
    image = KernelImage(path=tmp_path / "bzImage", arch=get_arch("x86_64"), description="fake",
                        vmlinux=small_vmlinux)
    spec = run.RunSpec(kernel=ResolvedKernel("fake", get_arch("x86_64"), image))
    seen = run.Seen(0.0, "2026-01-01T00:00:00+00:00", image=image)
    result = run.finish(spec, seen, tmp_path)
    assert result.symbolization == f"5 of 6 frames located in {small_vmlinux}"
    written = run.RunResult.from_json(json.loads((tmp_path / "result.json").read_text()))
    assert written.reports == result.reports
    assert str(written.reports[0].symbolized[0].location) == "mm/foo.c:5"
    assert "report:  WARNING in leaf (mm/foo.c:5)" in _summary(result)
