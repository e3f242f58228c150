"""Inputs a hostile but fair user (or guest) gives, from issue 23: user regexes against
titles the guest chose (items 4 and 10), a matrix of a billion cells (4), logs in UTF-16
or with NUL bytes (10), and `parse-log --arch all` (10)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import cli, kernel_log, lab
from harness.errors import UsageError
from harness.kernel_log import gate
from harness.kernel_log.logfile import text_encoding
from harness.kernel_log.stream import ConsoleFile

REPO = Path(__file__).resolve().parents[2]
WARNING = """\
[    1.000000] ------------[ cut here ]------------
[    1.000001] WARNING: CPU: 0 PID: 1 at mm/foo.c:10 {function}+0x10/0x20
[    1.000002] Modules linked in:
[    1.000003] CPU: 0 PID: 1 Comm: init Not tainted 6.1.0 #1
[    1.000004] Call Trace:
[    1.000005]  {function}+0x10/0x20
[    1.000006] ---[ end trace 0000000000000000 ]---
"""


def warning(function: str = "foo_bar") -> str:
    return WARNING.format(function=function)


def parse_log(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`oomrace parse-log` in its own process: a hang is a failed test, not a stuck one."""
    return subprocess.run([sys.executable, "-m", "harness", "parse-log", *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


# --- --allow against a guest's titles ------------------------------------------------------


def test_the_probe_allow_pattern_on_a_long_run_of_q_is_fast(tmp_path: Path) -> None:
    """The probe: `--allow '(q+)+$'` took 11.6 s on 26 q's under `re`, over 60 s on 40."""
    log = tmp_path / "q.log"
    log.write_text("".join(warning("q" * n + "_x") for n in (26, 40, 100)))
    started = time.monotonic()
    done = parse_log(str(log), "--allow", "(q+)+$", "--json")
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stderr  # `_x` ends each title: nothing is allowed
    assert [r["gating"] for r in json.loads(done.stdout)["reports"]] == [True] * 3


def test_a_pattern_past_its_time_bound_fails_closed_once_per_log(tmp_path: Path) -> None:
    """`(q|qq)+$` backtracks on the regex module too: the first title costs the bound,
    the pattern is then set aside for the log, and every report gates."""
    log = tmp_path / "q.log"
    log.write_text("".join(warning("q" * 100 + f"{i}x") for i in range(20)))
    started = time.monotonic()
    done = parse_log(str(log), "--allow", "(q|qq)+$", "--json")
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    reports = json.loads(done.stdout)["reports"]
    assert all(r["gating"] and r["timed_out"] == [{"pattern": "(q|qq)+$", "from": "--allow"}]
               for r in reports) and len(reports) == 20
    assert seconds < 20 * gate.SEARCH_TIMEOUT + 15  # not 20 bounds: one, plus the start
    text = parse_log(str(log), "--allow", "(q|qq)+$").stdout
    assert f"took over {gate.SEARCH_TIMEOUT:g} s" in text and "simplify the pattern" in text


def test_a_fail_on_past_its_bound_gates() -> None:
    found = kernel_log.parse(warning("q" * 100 + "x"))
    judged = kernel_log.build_gate(fail_on=["(q|qq)+$"]).apply(found)
    assert judged.gating == 1 and judged.judgements[0].timed_out


def test_the_pytest_plugin_bounds_its_patterns_too(tmp_path: Path) -> None:
    from harness import pytest_plugin

    console = tmp_path / "console.log"
    console.write_text(warning("q" * 100 + "x"))
    marker = SimpleNamespace(args=("(q|qq)+$",))
    item = SimpleNamespace(iter_markers=lambda name: [marker])
    guest = SimpleNamespace(arch=SimpleNamespace(name="x86_64"),
                            artifacts=SimpleNamespace(console_log=console),
                            console_reader=ConsoleFile(console),
                            kernel=SimpleNamespace(vmlinux=None))
    started = time.monotonic()
    titles = pytest_plugin.unexpected_reports(item, [guest])  # type: ignore[arg-type]
    assert len(titles) == 1 and time.monotonic() - started < 15


# --- a matrix of a billion cells ---------------------------------------------------------------


def test_a_billion_repeats_is_one_line_error_at_once() -> None:
    text = ('[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "mrelease"\n'
            "repeats = 1000000000\n")
    started = time.monotonic()
    with pytest.raises(lab.MatrixError) as caught:
        lab.parse_matrix(text, Path("m.toml"), recipes=["v6.1"])
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message and message.startswith("m.toml:5:")
    assert "1000000000 cells" in message and f"at most {lab.matrix.MAX_CELLS}" in message


def test_the_cap_counts_every_entry_and_repeats_from_defaults() -> None:
    entry = '[[cell]]\narch = ["x86_64", "aarch64"]\nkernel = "debian"\nscenario = "mrelease"\n'
    cap = lab.matrix.MAX_CELLS
    fits = f"[defaults]\nrepeats = {cap // 4}\n" + entry + entry.replace("mrelease", "oom")
    assert len(lab.parse_matrix(fits, Path("m.toml"), recipes=["v6.1"]).cells) == cap
    with pytest.raises(lab.MatrixError, match=r"^m.toml:2: \[\[cell\]\] #3 makes"):
        lab.parse_matrix(fits + entry.replace("mrelease", "munmap"), Path("m.toml"),
                         recipes=["v6.1"])


# --- what a log is written in -------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_log_in_another_unicode_encoding_is_read(tmp_path: Path, encoding: str) -> None:
    """A UTF-16 log said "no crash found" and exit 0: a gate passed on a log it could not
    read. It is decoded now, with or without a byte-order mark."""
    text = "[    0.000000] Linux version 6.1.0\n" + warning()
    log = tmp_path / "console.log"
    log.write_bytes(text.encode(encoding))
    done = parse_log(str(log), "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert [r["title"] for r in data["reports"]] == ["WARNING in foo_bar"]
    assert data["reports"] == [r.to_dict() for r in kernel_log.parse(text).reports] \
        or data["reports"][0]["start_line"] == kernel_log.parse(text).reports[0].start_line


def test_stray_nuls_or_a_lookalike_mark_are_not_utf16() -> None:
    assert text_encoding(b"\x00" * 64 + warning().encode()) == ("utf-8", 0)
    assert text_encoding(b"\xff\xfe garbage\n" + warning().encode()) == ("utf-8", 0)
    assert text_encoding(warning().encode("utf-16-le")) == ("utf-16-le", 0)
    assert text_encoding(warning().encode("utf-16")) == ("utf-16-le", 2)
    assert text_encoding(warning().encode("utf-32")) == ("utf-32-le", 4)
    assert text_encoding(b"abc") == ("utf-8", 0)


@pytest.mark.parametrize("where", ["before the line", "after the timestamp", "in the line"])
def test_nul_bytes_do_not_garble_a_title(tmp_path: Path, where: str) -> None:
    """NULs before a WARNING line titled it "WARNING in corrupted"."""
    text = warning()
    line = "[    1.000001] WARNING"
    text = {"before the line": text.replace(line, "\0\0\0\0" + line),
            "after the timestamp": text.replace(line, line.replace("] ", "] \0\0")),
            "in the line": text.replace("WARNING:", "WARNING:\0")}[where]
    log = tmp_path / "console.log"
    log.write_text(text)
    assert [r.title for r in kernel_log.parse_file(log).reports] == ["WARNING in foo_bar"]
    assert [r.title for r in kernel_log.parse(text).reports] == ["WARNING in foo_bar"]


# --- --arch all ---------------------------------------------------------------------------------


def test_parse_log_arch_all_is_refused_without_offering_all(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "console.log"
    log.write_text(warning())
    code = cli.main(["parse-log", str(log), "--arch", "all", "--vmlinux", str(tmp_path / "v")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'all'" in err and "one arch" in err and "(or 'all')" not in err
    assert "aarch64" in err and "x86_64" in err


def test_arch_lists_still_offer_all() -> None:
    with pytest.raises(UsageError, match=r"\(or 'all'\)"):
        from harness.arches import parse_arch_list
        parse_arch_list(["sparc"])
