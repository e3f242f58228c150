"""`oomrace parse-log` as a CI gate (issue 13): --allow, --fail-on and --allow-file decide
which reports fail (exit 1), `-` reads stdin, and the JSON marks each report gating."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import cli, kernel_log

REPO = Path(__file__).resolve().parents[2]

WARNING = """\
[    1.000000] ------------[ cut here ]------------
[    1.000001] WARNING: CPU: 0 PID: 1 at mm/foo.c:10 foo_bar+0x10/0x20
[    1.000002] Modules linked in:
[    1.000003] CPU: 0 PID: 1 Comm: init Not tainted 6.1.0 #1
[    1.000004] Call Trace:
[    1.000005]  <TASK>
[    1.000006]  foo_bar+0x10/0x20
[    1.000007]  do_syscall_64+0x3a/0x90
[    1.000008]  </TASK>
[    1.000009] ---[ end trace 0000000000000000 ]---
"""
NULL_DEREF = """\
[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    2.000001] #PF: supervisor read access in kernel mode
[    2.000002] Oops: 0000 [#1] PREEMPT SMP
[    2.000003] CPU: 0 PID: 1 Comm: init Tainted: G        W          6.1.0 #1
[    2.000004] RIP: 0010:baz_qux+0x5/0x10
[    2.000005] Call Trace:
[    2.000006]  <TASK>
[    2.000007]  baz_qux+0x5/0x10
[    2.000008]  do_syscall_64+0x3a/0x90
[    2.000009]  </TASK>
[    2.000010] ---[ end trace 0000000000000000 ]---
"""
WARNING_TITLE = "WARNING in foo_bar"
NULL_TITLE = "BUG: unable to handle kernel NULL pointer dereference in baz_qux"


@pytest.fixture
def both(tmp_path: Path) -> Path:
    path = tmp_path / "console.log"
    path.write_text("[    0.000000] Linux version 6.1.0\n" + WARNING + NULL_DEREF)
    return path


@pytest.fixture
def warning_only(tmp_path: Path) -> Path:
    path = tmp_path / "warning.log"
    path.write_text(WARNING)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["parse-log", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    data = json.loads(out)
    assert isinstance(data, dict)
    return code, data


def test_the_synthetic_log_has_the_two_titles(both: Path) -> None:
    titles = [r.title for r in kernel_log.parse_file(both).reports]
    assert titles == [WARNING_TITLE, NULL_TITLE]


def test_no_pattern_every_report_gates_as_before(both: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(both))
    assert code == 1
    assert "allowed" not in out and "gate:" not in out  # the summary of before
    code, data = run_json(capsys, str(both))
    assert code == 1
    assert [r["gating"] for r in data["reports"]] == [True, True]


def test_every_report_allowed_passes(both: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(both), "--allow", "WARNING in foo", "--allow", "NULL pointer")
    assert code == 0
    assert f"{WARNING_TITLE} (WARNING) [allowed by --allow 'WARNING in foo']" in out
    assert "[allowed by --allow 'NULL pointer']" in out
    assert "gate: pass (0 unexpected, 2 allowed)" in out


def test_an_unexpected_report_fails(both: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(both), "--allow", "^WARNING in foo_bar$")
    assert code == 1
    null_line = next(line for line in out.splitlines() if NULL_TITLE in line)
    assert "[" not in null_line.split(NULL_TITLE)[1].replace("(NULL-POINTER-DEREFERENCE)", "")
    assert "gate: FAIL (1 unexpected, 1 allowed)" in out


def test_allow_is_searched_not_matched_whole(warning_only: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(warning_only), "--allow", "foo")[0] == 0
    assert run(capsys, str(warning_only), "--allow", "^foo")[0] == 1


def test_fail_on_narrows_what_gates(both: Path, warning_only: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(warning_only), "--fail-on", "NULL pointer")
    assert code == 0
    assert "[not gating: not matched by --fail-on]" in out
    assert "gate: pass (0 unexpected, 0 allowed, 1 not matched by --fail-on)" in out
    assert run(capsys, str(both), "--fail-on", "NULL pointer")[0] == 1
    assert run(capsys, str(both), "--fail-on", "KASAN", "--fail-on", "^WARNING")[0] == 1


def test_allow_wins_over_fail_on(both: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, str(both), "--fail-on", ".", "--allow", "baz_qux",
                          "--allow", "foo_bar")
    assert code == 0
    reports = data["reports"]
    assert [r["gate_reason"] for r in reports] == ["allowed", "allowed"]


def test_json_marks_each_report_and_the_gate(both: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, str(both), "--allow", "WARNING in", "--fail-on", "KASAN|BUG")
    assert code == 1
    assert data["schema_version"] == 1
    warning, null = data["reports"]
    assert warning["gating"] is False and warning["gate_reason"] == "allowed"
    assert warning["allowed_by"] == {"pattern": "WARNING in", "from": "--allow"}
    assert null["gating"] is True and null["gate_reason"] == "unexpected"
    assert null["allowed_by"] is None
    assert data["gate"] == {
        "allow": [{"pattern": "WARNING in", "from": "--allow"}],
        "fail_on": [{"pattern": "KASAN|BUG", "from": "--fail-on"}],
        "gating_reports": 1,
        "passed": False,
    }
    code, data = run_json(capsys, str(both), "--fail-on", "KASAN")
    assert code == 0
    assert [r["gate_reason"] for r in data["reports"]] == [
        "not matched by --fail-on", "not matched by --fail-on"]


def test_json_file_and_the_summary_read_the_log_once(both: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "gate.json"
    code, out, _ = run(capsys, str(both), "--allow", "foo_bar", "--json", str(target))
    assert code == 1
    assert "[allowed by --allow 'foo_bar']" in out
    assert json.loads(target.read_text())["gate"]["gating_reports"] == 1


def test_allow_file(both: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    known = tmp_path / "known.txt"
    known.write_text("# known issues of this CI\n\n  WARNING in foo_bar  \n   # NULL\n"
                     "NULL pointer dereference in baz_qux\n")
    code, data = run_json(capsys, str(both), "--allow-file", str(known))
    assert code == 0
    origins = [r["allowed_by"]["from"] for r in data["reports"]]
    assert origins == [f"--allow-file {known}:3", f"--allow-file {known}:5"]
    partial = tmp_path / "partial.txt"
    partial.write_text("WARNING in foo_bar\n")
    assert run(capsys, str(both), "--allow-file", str(partial))[0] == 1
    assert run(capsys, str(both), "--allow-file", str(partial), "--allow", "baz")[0] == 0


@pytest.mark.parametrize(("argv", "names"), [
    (["--allow", "WARNING in (foo"], ["--allow 'WARNING in (foo'", "bad regex", "position"]),
    (["--fail-on", "[KASAN"], ["--fail-on '[KASAN'", "bad regex"]),
    (["--allow", "a{99999999999}"], ["--allow 'a{99999999999}'", "bad regex"]),
    (["--allow", "(" * 5000], ["--allow '(((", "bad regex"]),
    (["--allow", "x\ny("], ["--allow 'x\\ny('", "bad regex"]),
    (["--allow="], ["--allow ''", "empty pattern"]),
    (["--fail-on", ""], ["--fail-on ''", "empty pattern"]),
])
def test_a_bad_pattern_is_one_line_exit_2(both: Path, capsys: pytest.CaptureFixture[str],
                                          argv: list[str], names: list[str]) -> None:
    code, out, err = run(capsys, str(both), *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("oomrace: error: ")
    for name in names:
        assert name in err


def test_a_bad_allow_file_is_one_line_exit_2(both: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("# ok\nfine\nbroken(\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9\n")
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"x\n" * (kernel_log.gate.MAX_ALLOW_FILE_BYTES // 2 + 1))
    cases = {
        bad: f"--allow-file {bad}:3 'broken(': bad regex",
        tmp_path / "missing.txt": "no such file",
        tmp_path: "a directory, not a regular file",
        latin1: "not UTF-8",
        huge: "larger than",
    }
    for path, message in cases.items():
        code, _, err = run(capsys, str(both), "--allow-file", str(path))
        assert code == 2, path
        assert err.count("\n") == 1 and message in err, err


def test_a_bad_pattern_fails_before_stdin_is_read(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    raw = io.BytesIO(WARNING.encode())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
    assert run(capsys, "-", "--allow", "(")[0] == 2
    assert raw.tell() == 0


def test_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((WARNING + NULL_DEREF).encode())))
    code, out, _ = run(capsys, "-", "--allow", "WARNING in foo")
    assert code == 1
    assert out.startswith("<stdin>: 2 crash report(s)")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(WARNING.encode())))
    code, data = run_json(capsys, "-", "--allow", "WARNING in foo")
    assert code == 0 and data["gate"]["passed"] is True
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert run(capsys, "-")[:2] == (0, "<stdin>: no crash found\n")


def test_a_pipe_into_the_real_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "harness", "parse-log", "-", "--allow", "WARNING in foo"]
    done = subprocess.run(argv, input=WARNING + NULL_DEREF, capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert NULL_TITLE in done.stdout and "gate: FAIL" in done.stdout
    done = subprocess.run([*argv, "--allow", "NULL"], input=WARNING + NULL_DEREF,
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_a_named_fifo_is_still_refused_and_points_at_dash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = run(capsys, str(fifo))
    assert code == 2 and "parse-log -" in err and err.count("\n") == 1


def test_parse_log_main_takes_a_gate(both: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = kernel_log.build_gate(allow=["foo_bar", "baz_qux"])
    assert kernel_log.parse_log_main(str(both), as_json=False, gate=gate) == 0
    assert "gate: pass" in capsys.readouterr().out
    gate = kernel_log.build_gate(fail_on=["baz_qux"])
    assert kernel_log.parse_log_main(str(both), as_json=True, gate=gate) == 1
    data = json.loads(capsys.readouterr().out)
    assert [r["gating"] for r in data["reports"]] == [False, True]

