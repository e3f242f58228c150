"""A built wheel works outside the checkout (issues 11 and 20): installed into a fresh
venv, its `oomrace run` boots an aarch64 guest from a folder that is not the source tree,
its kernel recipes, patches and guest sources come from the wheel, and so does the rest:
a one-cell smoke night (`oomrace lab`, whose cells module is in the package),
`parse-log` on a real console log, `doctor`, and every subcommand's --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness import cli, ktap
from tests.conftest import REPO, qemu_processes_with

pytestmark = [pytest.mark.guest, pytest.mark.slow, pytest.mark.timeout(900)]

# What the wheel is built from: the files pyproject.toml packages, copied so that the
# build's egg-info and build/ folders never land in the checkout.
SOURCES = ("pyproject.toml", "README.md", "harness", "rootfs", "configs", "kernels")


def _not_packaged(folder: str, names: list[str]) -> set[str]:
    """What a checkout holds that is no source: caches, egg-info, and the guest programs'
    build output (rootfs/guest/build, gitignored; harness/kernel/build is a package)."""
    skip = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))}
    if Path(folder).resolve() == (REPO / "rootfs" / "guest").resolve():
        skip |= {"build"} & set(names)
    return skip


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=_not_packaged)
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    # pip builds in an isolated environment with the setuptools pyproject.toml asks for,
    # from the configured index (PyPI, or a local mirror offline); `--no-deps`: only ours.
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w",
                        str(dist), str(src)], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # pyproject.toml's package data is laid out as setuptools wants it (issue 22)
    assert "Package would be ignored" not in r.stdout + r.stderr, r.stdout + r.stderr
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


@dataclass(frozen=True)
class Installed:
    """The wheel in a fresh venv, and a folder outside the checkout to run it from."""

    venv: Path
    elsewhere: Path
    env: dict[str, str]

    def oomrace(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "oomrace"), *argv], cwd=self.elsewhere,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp_path = tmp_path_factory.mktemp("wheel")
    env_dir = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return Installed(env_dir, elsewhere, _env_without_checkout())


def test_wheel_runs_oomrace_outside_the_checkout(installed: Installed) -> None:
    env_dir, elsewhere, env = installed.venv, installed.elsewhere, installed.env
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

    out = elsewhere / "result.json"
    r = installed.oomrace("run", "--arch", "aarch64", "--scenario", "smoke", "--json", str(out),
                          "--artifacts", str(elsewhere / "art"), timeout=800)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert result["arch"] == "aarch64" and result["verdict"] == "clean", result
    assert "aarch64: CLEAN" in r.stdout


SMOKE_NIGHT = """\
name = "wheel"
[[cell]]
arch = "aarch64"
kernel = "debian"
scenario = "smoke"
cpus = 2
memory = 512
boot_timeout = 240
"""


def test_wheel_runs_a_smoke_night_outside_the_checkout(installed: Installed) -> None:
    """The lab from the wheel: its pytest runs the package's cells module (a checkout's
    tests/ is nowhere near), the cell boots Debian's kernel (the one `run` above boots,
    cached by then) and passes."""
    matrix = installed.elsewhere / "night.toml"
    matrix.write_text(SMOKE_NIGHT)
    out = installed.elsewhere / "night"
    r = installed.oomrace("lab", str(matrix), "--out", str(out), "-j", "1", timeout=800)
    log = r.stdout[-4000:] + r.stderr[-3000:]
    assert r.returncode == 0, log
    assert "lab: 1 passed, 0 failed, 0 not run of 1 cells" in r.stdout, log
    summary = json.loads((out / "summary.json").read_text())
    (cell,) = summary["cells"]
    assert (cell["id"], cell["verdict"], cell["outcome"]) == (
        "aarch64-debian-smoke-r0", "clean", "pass")
    assert summary["not_run"] == {} and summary["host"]["commit"] is None  # not a checkout
    (test,) = ktap.parse((out / cell["paths"]["ktap"]).read_text()).tests
    assert (test.name, test.ok) == ("aarch64-debian-smoke-r0", True)  # the cell's, not the run's
    (case,) = ET.parse(out / "pytest-junit.xml").getroot().iter("testcase")
    assert case.get("classname") == "harness.lab.pytest_cells"  # the package's module
    assert qemu_processes_with(str(out)) == []


def test_wheel_runs_every_subcommand_outside_the_checkout(installed: Installed) -> None:
    """parse-log on a real console log (the bug's reports found, exit 1), doctor, and
    the --help of every subcommand (each builds its options from the wheel's data)."""
    log = installed.elsewhere / "console.log"
    shutil.copy2(REPO / "tests" / "data" / "kernel_logs" /
                 "aarch64-v6.1-reaper-fullmm-mrelease.log", log)
    r = installed.oomrace("parse-log", str(log), "--json")
    assert r.returncode == 1, r.stderr  # reports that gate: exit 1
    titles = [report["title"] for report in json.loads(r.stdout)["reports"]]
    assert "pagealloc: memory corruption in post_alloc_hook" in titles
    r = installed.oomrace("doctor", "--json")  # configs/host-packages.txt from the wheel
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert "qemu-system-arm" in json.loads(r.stdout)["checked"]

    for name in ("evaluate", "bisect"):
        r = installed.oomrace(name, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: oomrace {name}"), r.stderr
    # Every other --help in one interpreter of the venv (a process each costs seconds).
    names = [c.name for c in cli.command_table()] + ["kernel build"]
    assert {"evaluate", "bisect", "lab", "parse-log"} <= set(names)
    probe = ("import contextlib, io, json, sys, harness.cli as c\n"
             "done = {}\n"
             "for name in json.loads(sys.argv[1]):\n"
             "    out = io.StringIO()\n"
             "    with contextlib.redirect_stdout(out):\n"
             "        code = c.main([*name.split(), '--help'])\n"
             "    done[name] = [code, out.getvalue()[:200]]\n"
             "print(json.dumps(done))\n")
    r = subprocess.run([str(installed.venv / "bin" / "python"), "-c", probe, json.dumps(names)],
                       cwd=installed.elsewhere, env=installed.env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    for name, (code, text) in json.loads(r.stdout).items():
        assert code == 0 and text.startswith(f"usage: oomrace {name}"), (name, code, text)
