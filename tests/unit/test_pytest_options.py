"""The pytest plugin's options: --oomrace-NAME only (the old plain --NAME aliases ended
after their one release), and no clash with another plugin's --arch."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOW = """\
def test_show(request):
    option = request.config.option
    print("OOMRACE", option.oomrace_arch, option.oomrace_kernel, option.oomrace_accel)
"""

pytestmark = pytest.mark.skipif(
    not any(e.name == "oomrace" for e in entry_points(group="pytest11")),
    reason="the package is not installed, so its pytest plugin is not registered")


def pytest_in(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "-W", "default", *argv], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_prefixed_names_only(tmp_path: Path) -> None:
    (tmp_path / "test_show.py").write_text(SHOW)
    new = pytest_in(tmp_path, "--oomrace-arch", "aarch64", "--oomrace-accel", "kvm")
    assert new.returncode == 0, new.stdout + new.stderr
    assert "OOMRACE ['aarch64'] debian kvm" in new.stdout
    old = pytest_in(tmp_path, "--arch", "x86_64")
    assert old.returncode == 4, old.stdout + old.stderr  # pytest's usage error
    assert "unrecognized arguments: --arch" in old.stderr


def test_another_plugins_arch_option_wins(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        'def pytest_addoption(parser):\n    parser.addoption("--arch", default="theirs")\n')
    (tmp_path / "test_show.py").write_text(
        SHOW + '\n\ndef test_theirs(request):\n'
               '    print("THEIRS", request.config.getoption("--arch"))\n')
    proc = pytest_in(tmp_path, "--arch", "riscv", "--oomrace-arch", "x86_64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "THEIRS riscv" in proc.stdout and "OOMRACE ['x86_64']" in proc.stdout


def test_kconfig_options_are_checked_at_start(tmp_path: Path) -> None:
    (tmp_path / "test_show.py").write_text(SHOW)
    bad = pytest_in(tmp_path, "--oomrace-kconfig-add", "KASAN=y")
    assert bad.returncode == 4, bad.stdout + bad.stderr  # pytest's usage error
    assert "--kconfig-add 'KASAN=y': expected CONFIG_NAME=VALUE" in bad.stderr
    good = pytest_in(tmp_path, "--oomrace-kernel", "v6.1", "--oomrace-kconfig-add",
                     "CONFIG_KASAN=y")
    assert good.returncode == 0, good.stdout + good.stderr
