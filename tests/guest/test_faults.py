"""Interrupts, timeouts and concurrency: no QEMU may outlive its run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ..conftest import REPO, qemu_processes_with


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _console_logs(root: Path) -> list[Path]:
    return [p for p in root.rglob("console.log") if p.stat().st_size > 0]


@pytest.mark.guest
@pytest.mark.timeout(300)
def test_sigint_during_a_run_leaves_no_qemu(tmp_path: Path, cli_env: dict[str, str]) -> None:
    artifacts = tmp_path / "art"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--arch", "x86_64", "--artifacts",
         str(artifacts)], cwd=REPO, env=cli_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    try:
        # Interrupt while the guest is booting (its console has started to fill).
        assert _wait_for(lambda: _console_logs(artifacts), 180), "the guest never started"
        assert qemu_processes_with(str(artifacts)), "QEMU should be running now"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0
    assert qemu_processes_with(str(artifacts)) == [], out
    assert _console_logs(artifacts), "the console log must survive the interrupt"


@pytest.mark.guest
@pytest.mark.timeout(300)
def test_pytest_timeout_in_a_guest_test_leaves_no_qemu(tmp_path: Path,
                                                         cli_env: dict[str, str]) -> None:
    test_file = tmp_path / "test_hangs.py"
    test_file.write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.timeout(15)
        def test_hangs(guest):
            guest.run(["sleep", "600"], timeout=900)
    """))
    artifacts = tmp_path / "art"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "--oomrace-arch", "x86_64",
         "--oomrace-artifacts", str(artifacts), "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Timeout" in r.stdout
    assert "console log" in r.stdout  # the failure names the guest's artifacts
    assert qemu_processes_with(str(artifacts)) == []
    assert _console_logs(artifacts)


@pytest.mark.guest
@pytest.mark.timeout(600)
def test_two_runs_at_once_do_not_clash(tmp_path: Path, cli_env: dict[str, str]) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--arch", "x86_64", "--scenario", "smoke",
             "--json", str(tmp_path / f"r{i}.json"), "--artifacts", str(tmp_path / f"a{i}")],
            cwd=REPO, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=540)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ports = set()
    for i in range(2):
        argv = json.loads((tmp_path / f"r{i}.json").read_text())["qemu_argv"]
        netdev = argv[argv.index("-netdev") + 1]
        ports.add(netdev.split("hostfwd=tcp:127.0.0.1:")[1].split("-")[0])
    assert len(ports) == 2
