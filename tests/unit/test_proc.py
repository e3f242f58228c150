"""The one helper for host commands: timeout, group kill, one error type."""

from __future__ import annotations

import time

import pytest

from harness import proc
from harness.errors import HarnessError, MissingToolError


def test_output_and_exit_status() -> None:
    done = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_failure_names_the_command_and_the_tail_of_its_output() -> None:
    with pytest.raises(proc.CommandError) as e:
        proc.run(["sh", "-c", "seq 1 5000; exit 1"])
    assert isinstance(e.value, HarnessError) and e.value.argv[0] == "sh"
    assert "failed (exit 1)" in str(e.value) and str(e.value).rstrip().endswith("5000")
    assert len(e.value.output_tail) <= proc.TAIL_CHARS


def test_timeout_ends_the_whole_group() -> None:
    started = time.monotonic()
    with pytest.raises(proc.CommandError, match="did not finish within 1 s"):
        proc.run(["sh", "-c", "sleep 60 & sleep 60; wait"], timeout=1)
    assert time.monotonic() - started < 20  # the background sleep did not hold the pipe


def test_missing_program_names_the_package() -> None:
    with pytest.raises(MissingToolError, match="apt-get install some-package"):
        proc.run(["oomrace-no-such-program"], package="some-package")
