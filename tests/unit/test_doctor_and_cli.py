import subprocess
import sys
from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.errors import MissingToolError
from harness.tools import arch_tools, doctor_report, require

REPO = Path(__file__).resolve().parents[2]


def test_missing_qemu_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    qemu = next(t for t in arch_tools(get_arch("aarch64")) if t.program.startswith("qemu"))
    with pytest.raises(MissingToolError) as e:
        require(qemu)
    assert "apt-get install qemu-system-arm" in str(e.value)


def test_doctor_lists_everything_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, report = doctor_report()
    assert not ok
    assert "sudo apt-get install -y" in report
    for package in ("qemu-system-x86", "qemu-system-arm", "gcc-aarch64-linux-gnu"):
        assert package in report


def oomrace(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_unknown_arch() -> None:
    r = oomrace("run", "--arch", "sparc")
    assert r.returncode == 2
    assert "unknown arch 'sparc'" in r.stderr and "x86_64" in r.stderr


def test_cli_unknown_option() -> None:
    r = oomrace("run", "--frobnicate")
    assert r.returncode == 2 and "unrecognized arguments: --frobnicate" in r.stderr


def test_cli_kernel_path_problems(tmp_path: Path) -> None:
    r = oomrace("run", "--arch", "x86_64", "--kernel", str(tmp_path / "missing"),
                "--artifacts", str(tmp_path / "a"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    r = oomrace("run", "--arch", "x86_64", "--kernel", str(junk), "--artifacts", str(tmp_path))
    assert r.returncode == 2 and "not a kernel image" in r.stderr


def test_cli_doctor_without_tools(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "harness", "doctor"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and "apt-get install" in r.stdout
