"""The serial runner's marker protocol, against a real shell on pipes (no QEMU)."""

import subprocess
from collections.abc import Iterator

import pytest

from harness.console import ConsoleStream, SerialRunner, without_kernel_lines
from harness.errors import GuestCommandError


@pytest.fixture
def shell() -> Iterator[SerialRunner]:
    proc = subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield SerialRunner(ConsoleStream(proc))
    finally:
        proc.kill()
        proc.wait(5)


def test_output_and_exit_codes(shell: SerialRunner) -> None:
    r = shell.run("echo hello; echo world", timeout=10)
    assert (r.stdout, r.exit_code) == ("hello\nworld\n", 0)
    assert shell.run(["sh", "-c", "exit 42"], timeout=10).exit_code == 42
    assert shell.run("printf 'no newline'", timeout=10).stdout == "no newline"
    assert shell.run("true", timeout=10).stdout == ""


def test_argv_is_quoted(shell: SerialRunner) -> None:
    r = shell.run(["echo", "a b", "$HOME", "'q'"], timeout=10)
    assert r.stdout == "a b $HOME 'q'\n"


def test_multiline_script(shell: SerialRunner) -> None:
    r = shell.run("for i in 1 2 3; do\n  echo $i\ndone\nexit_code=5\n(exit $exit_code)", 10)
    assert r.stdout == "1\n2\n3\n" and r.exit_code == 5


def test_markers_in_output_do_not_confuse(shell: SerialRunner) -> None:
    r = shell.run("echo OOMR-deadbeef-E:3", timeout=10)
    assert r.stdout == "OOMR-deadbeef-E:3\n" and r.exit_code == 0


def test_check_raises_with_output(shell: SerialRunner) -> None:
    with pytest.raises(GuestCommandError, match="exit code 1"):
        shell.run("echo oops; false", timeout=10, check=True)


def test_timeout(shell: SerialRunner) -> None:
    with pytest.raises(GuestCommandError, match="timed out"):
        shell.run("sleep 5", timeout=0.5)
    assert shell.busy


def test_eof(shell: SerialRunner) -> None:
    with pytest.raises(GuestCommandError, match="closed"):
        shell.run("exit 0", timeout=10)



def test_kernel_messages_between_output_lines_can_be_dropped(shell: SerialRunner) -> None:
    """A printk on the shared console (here: echoed as the kernel prints it) shows in the
    output, as `dmesg` over serial needs; without_kernel_lines leaves the command's own."""
    r = shell.run("echo x86_64; echo '[    6.400849] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link "
                  "becomes ready'; echo '[   12.000001][ T42] with a caller id'; echo two",
                  timeout=10)
    assert len(r.stdout.splitlines()) == 4
    assert without_kernel_lines(r.stdout).splitlines() == ["x86_64", "two"]
    kept = "[not a timestamp] kept\n"
    plain = shell.run("echo '[not a timestamp] kept'", timeout=10).stdout
    assert without_kernel_lines(plain) == kept
