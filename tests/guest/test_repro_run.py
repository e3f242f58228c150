"""`oomrace run` with the user's own reproducer, on a real arm64 guest and a kernel the
race tests build anyway (v6.1-reaper-fullmm): --exec and --repro FILE.c are run and
judged by their exit codes, and --append and --cpu reach the guest. Two short boots, no
build of our own; the bisects with a reproducer are in tests/bisect/test_bisect_repro.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO

pytestmark = [pytest.mark.guest, pytest.mark.kernel_build]

KERNEL = "v6.1-reaper-fullmm"  # built for tests/race; the bug needs a stress scenario


def oomrace_run(tmp_path: Path, env: dict[str, str], *args: str
                ) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--arch", "aarch64", "--kernel", KERNEL,
         "--artifacts", str(tmp_path / "artifacts"), "--json", str(out), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False)
    print(done.stdout, done.stderr[-3000:])
    return done.returncode, json.loads(out.read_text()) if out.is_file() else {}


@pytest.mark.timeout(1800)
def test_exec_runs_in_the_guest_with_append_and_cpu(tmp_path: Path,
                                                     cli_env: dict[str, str]) -> None:
    # exits 3 only where the guest's kernel got our argument: the exit code is the verdict
    code, result = oomrace_run(
        tmp_path, cli_env, "--exec", "grep -q oomrace.repro_test=1 /proc/cmdline && exit 3",
        "--append", "oomrace.repro_test=1", "--cpu", "cortex-a57", "--iterations", "2")
    assert code == 1, result
    assert result["verdict"] == "failed" and result["scenario"] == "repro", result["reason"]
    work = result["workload"]
    assert work["kind"] == "repro"
    assert [r["exit_code"] for r in work["repro"]["runs"]] == [3, 3]
    argv = result["qemu_argv"]
    assert argv[argv.index("-cpu") + 1] == "cortex-a57"
    assert argv[argv.index("-smp") + 1] == "2"  # a reproducer gets the plain guest


@pytest.mark.timeout(1800)
def test_a_c_reproducer_is_built_for_the_guest_and_run(tmp_path: Path,
                                                       cli_env: dict[str, str]) -> None:
    source = tmp_path / "uname.c"
    source.write_text(
        "#include <stdio.h>\n#include <string.h>\n#include <sys/utsname.h>\n"
        "int main(void) {\n  struct utsname u;\n  if (uname(&u)) return 2;\n"
        "  printf(\"%s\\n\", u.machine);\n  return strcmp(u.machine, \"aarch64\") != 0;\n}\n")
    code, result = oomrace_run(tmp_path, cli_env, "--repro", str(source),
                               "--iterations", "3")
    assert code == 0, result
    assert result["verdict"] == "clean", result["reason"]
    repro = result["workload"]["repro"]
    assert repro["reproducer"]["kind"] == "program" and repro["trials"] == 3
    assert repro["detections"] == 0
