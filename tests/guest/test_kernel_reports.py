"""A kernel report the test did not expect fails it, naming the report's title."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..conftest import qemu_processes_with

# A report injected through /dev/kmsg reaches the console like any kernel message, so the
# whole path (console log -> parser -> plugin) is real without crashing the kernel.
TEST_BODY = """
    import pytest

    REPORT = [
        "WARNING: CPU: 0 PID: 1 at mm/oom_kill.c:123 __oom_reap_task_mm+0x10/0x20",
        "Modules linked in:",
        "CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1",
        "RIP: 0010:__oom_reap_task_mm+0x10/0x20",
        "Call Trace:",
        " <TASK>",
        " oom_reaper+0x1a0/0x3c0",
        " kthread+0xe8/0x110",
        " ret_from_fork+0x22/0x30",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ]
    INJECT = ["sh", "-c", 'for l in "$@"; do echo "$l" > /dev/kmsg; done', "sh", *REPORT]

    def test_unexpected(guest):
        guest.run(INJECT, timeout=60, check=True)

    @pytest.mark.kernel_reports(r"^WARNING in __oom_reap_task_mm$")
    def test_expected(guest):
        guest.run(INJECT, timeout=60, check=True)
"""


@pytest.mark.guest
@pytest.mark.timeout(300)
def test_unexpected_kernel_report_fails_the_test(tmp_path: Path,
                                                   cli_env: dict[str, str]) -> None:
    (tmp_path / "test_reports.py").write_text(textwrap.dedent(TEST_BODY))
    artifacts = tmp_path / "art"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "test_reports.py", "--oomrace-arch", "x86_64",
         "--oomrace-artifacts", str(artifacts), "-p", "no:cacheprovider", "-rA"],
        cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=280, check=False,
    )
    out = r.stdout
    assert "FAILED test_reports.py::test_unexpected[x86_64]" in out, out
    assert "unexpected kernel report(s)" in out
    assert "x86_64: WARNING in __oom_reap_task_mm" in out
    assert "PASSED test_reports.py::test_expected[x86_64]" in out
    assert qemu_processes_with(str(artifacts)) == []
