"""The pytest plugin's options: --oomrace-NAME, the old --NAME kept one release as a
deprecated alias, and no clash with another plugin's --arch."""

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


def test_new_names_and_deprecated_aliases(tmp_path: Path) -> None:
    (tmp_path / "test_show.py").write_text(SHOW)
    new = pytest_in(tmp_path, "--oomrace-arch", "aarch64", "--oomrace-accel", "kvm")
    assert "OOMRACE ['aarch64'] debian kvm" in new.stdout and "deprecated" not in new.stdout
    old = pytest_in(tmp_path, "--arch", "x86_64", "--kernel", "v6.1")
    assert old.returncode == 0, old.stdout + old.stderr
    assert "OOMRACE ['x86_64'] v6.1 tcg" in old.stdout
    assert "--arch is deprecated and will be removed in the next release: use --oomrace-arch" \
        in old.stdout
    assert "use --oomrace-kernel" in old.stdout


def test_another_plugins_arch_option_wins(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        'def pytest_addoption(parser):\n    parser.addoption("--arch", default="theirs")\n')
    (tmp_path / "test_show.py").write_text(
        SHOW + '\n\ndef test_theirs(request):\n'
               '    print("THEIRS", request.config.getoption("--arch"))\n')
    proc = pytest_in(tmp_path, "--arch", "riscv", "--oomrace-arch", "x86_64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "THEIRS riscv" in proc.stdout and "OOMRACE ['x86_64']" in proc.stdout
    assert "--arch is deprecated" not in proc.stdout


def test_kconfig_options_are_checked_at_start(tmp_path: Path) -> None:
    (tmp_path / "test_show.py").write_text(SHOW)
    bad = pytest_in(tmp_path, "--oomrace-kconfig-add", "KASAN=y")
    assert bad.returncode == 4, bad.stdout + bad.stderr  # pytest's usage error
    assert "--kconfig-add 'KASAN=y': expected CONFIG_NAME=VALUE" in bad.stderr
    good = pytest_in(tmp_path, "--oomrace-kernel", "v6.1", "--oomrace-kconfig-add",
                     "CONFIG_KASAN=y")
    assert good.returncode == 0, good.stdout + good.stderr
