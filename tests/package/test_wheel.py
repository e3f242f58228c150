"""A built wheel works outside the checkout (issue 11): installed into a fresh venv, its
`oomrace run` boots an aarch64 guest from a folder that is not the source tree, and its
kernel recipes, patches and guest sources come from the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.guest, pytest.mark.slow, pytest.mark.timeout(900)]

# What the wheel is built from: the files pyproject.toml packages, copied so that the
# build's egg-info and build/ folders never land in the checkout.
SOURCES = ("pyproject.toml", "README.md", "harness", "rootfs", "configs", "kernels")


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "build", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    # pip builds in an isolated environment with the setuptools pyproject.toml asks for,
    # from the configured index (PyPI, or a local mirror offline); `--no-deps`: only ours.
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(dist), str(src)], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = dist.glob("oomrace-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A venv with the wheel installed and nothing from the checkout. The dependencies
    (paramiko, pexpect, pytest...) are not downloaded: a .pth line makes the running
    interpreter's site-packages visible after the venv's own. Python does not read the
    .pth files of a folder added that way, so the checkout's editable install stays out;
    its metadata may still be seen there (a PEP 660 editable install keeps its dist-info
    in site-packages, as tox's does), so pip must not take it for this venv's own
    (`--ignore-installed`: install the wheel whatever is visible, uninstall nothing)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "oomrace-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                        "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return env_dir


def _env_without_checkout() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(REPO)))
    return env


def test_wheel_runs_oomrace_outside_the_checkout(tmp_path: Path) -> None:
    env_dir = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env_without_checkout()
    # The package, its data folders and the recipes all come from the venv.
    probe = ("import json, harness, harness.kernel.build.recipes as k, harness.paths as p; "
             "print(json.dumps({'package': harness.__file__, "
             "'kernels': str(p.project_dir('kernels')), 'rootfs': str(p.project_dir('rootfs')), "
             "'recipes': k.recipe_names(), 'patches': sorted(x.name for x in "
             "k.PATCHES_DIR.rglob('*.patch'))}))")
    r = subprocess.run([str(env_dir / "bin" / "python"), "-c", probe], cwd=elsewhere,
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    for key in ("package", "kernels", "rootfs"):
        assert Path(found[key]).is_relative_to(env_dir), found
    assert "v6.1" in found["recipes"] and found["patches"], found

    out = tmp_path / "result.json"
    r = subprocess.run(
        [str(env_dir / "bin" / "oomrace"), "run", "--arch", "aarch64", "--scenario", "smoke",
         "--json", str(out), "--artifacts", str(elsewhere / "art")],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=800, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert result["arch"] == "aarch64" and result["verdict"] == "clean", result
    assert "aarch64: CLEAN" in r.stdout
