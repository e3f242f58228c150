"""The seed bug on the seed's kernel: Linux 4.14.2 through the real OOM killer.

aarch64 4.14.2 corrupts memory in the `oom` scenario; x86_64 4.14.2 stays clean over the
same budget; each fix from the 2017 thread stays clean on aarch64, with the upper end of
its 95% interval below the lower end of the bug's (all through `oomrace evaluate`).

The 4.14.2 tarball comes from ../shared/linux (or $OOMRACE_KERNEL_SOURCES). Without it
these tests skip, saying so, except in CI, where it must be there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import BootError, UsageError
from harness.kernel.build import recipes
from harness.kernel.build.source import find_source_file

from ..conftest import REPO, missing_shared, qemu_processes_with

TARBALL = recipes.load_recipe("v4.14.2").source
BUG_SECONDS = 80  # 8 batches: the bug showed in 5-6 of 6 batches per minute when measured


def _seed_source() -> Path | None:
    try:
        return find_source_file(TARBALL)
    except UsageError as e:
        missing_shared(f"the Linux 4.14.2 tarball is not here: {e}")
    return None


pytestmark = [pytest.mark.guest, pytest.mark.kernel_build, pytest.mark.slow,
              pytest.mark.usefixtures("seed_source")]


@pytest.fixture(scope="module")
def seed_source() -> Path | None:
    return _seed_source()


def oomrace(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    print(proc.stdout)
    print(proc.stderr[-4000:], file=sys.stderr)
    return proc


@pytest.mark.timeout(1800)
def test_evaluate_catches_the_bug_and_judges_every_fix_on_aarch64(tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    proc = oomrace("evaluate", "v4.14.2", "--arch", "aarch64", "--bug-seconds",
                   str(BUG_SECONDS), "--artifacts", str(tmp_path), "--json", str(out),
                   timeout=1700)
    rows = {r["recipe"]: r for r in json.loads(out.read_text())["rows"]}
    bug = rows["v4.14.2"]
    assert bug["verdict"] == "corrupted", proc.stdout
    assert "memory corruption" in bug["evidence"] or "checker record" in bug["evidence"]
    for fix in ("v4.14.2+gather-each-vma", "v4.14.2+mm-users-fix", "v4.14.2+lazy-flag-fix"):
        row = rows[fix]
        assert row["verdict"] == "clean", proc.stdout
        assert row["ci95"][1] < bug["ci95"][0], proc.stdout
        assert row["judgement"].startswith("fixes it"), proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "v4.14.2+lazy-flag-fix" in proc.stdout.splitlines()[-3]  # the table's last row
    # Through the OOM killer and the oom_reaper thread, with no harness errors.
    result = json.loads((Path(bug["result"])).read_text())
    assert result["workload"]["error"] is None
    assert any(e["kind"] == "oom_reaped" for e in result["events"])
    # glibc's rseq registration is switched off in the guest: no unknown-syscall dumps
    # from our programs (only init's own, before its first line runs).
    console = Path(result["console_log"]).read_text(errors="replace")
    noise = [line for line in console.splitlines() if ": syscall 293" in line]
    assert len(noise) <= 1, noise
    assert qemu_processes_with(str(tmp_path)) == []


@pytest.mark.timeout(1200)
def test_x86_64_stays_clean_over_the_same_budget(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = oomrace("run", "--arch", "x86_64", "--kernel", "v4.14.2", "--scenario", "oom",
                   "--duration", str(BUG_SECONDS), "--artifacts", str(tmp_path), "--json",
                   str(out), timeout=1100)
    result = json.loads(out.read_text())
    assert result["verdict"] == "clean", proc.stdout
    assert proc.returncode == 0
    work = result["workload"]
    assert work["trials"] >= 5 and work["detections"] == 0 and work["iterations"] > 0
    assert any(e["kind"] == "oom_reaped" for e in result["events"]), "the reaper never ran"


@pytest.mark.timeout(600)
def test_process_mrelease_scenario_is_refused_before_boot_on_4_14(tmp_path: Path) -> None:
    proc = oomrace("run", "--arch", "aarch64", "--kernel", "v4.14.2", "--scenario",
                   "mrelease", "--artifacts", str(tmp_path), timeout=500)
    assert proc.returncode == 2
    assert "needs Linux >= 5.15" in proc.stderr and "4.14.2" in proc.stderr
    assert not list(tmp_path.glob("run-*"))  # nothing booted


@pytest.mark.timeout(900)
def test_any_source_builds_with_our_config_and_the_image_path_boots(tmp_path: Path) -> None:
    patch = recipes.PATCHES_DIR / "4.14" / "gather-each-vma.patch"
    proc = oomrace("kernel", "build", "--source", TARBALL, "--arch", "aarch64",
                   "--config-from", "v4.14.2", "--patch", str(patch), "--no-progress",
                   timeout=800)
    assert proc.returncode == 0, proc.stderr
    image = Path(proc.stdout.strip().splitlines()[-1])
    assert image.is_file() and image.name == "Image"
    # The path it printed works as --kernel: version, CPU model and page_poison found.
    run = oomrace("run", "--arch", "aarch64", "--kernel", str(image), "--scenario", "smoke",
                  "--artifacts", str(tmp_path), "--json", str(tmp_path / "r.json"),
                  timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    argv = json.loads((tmp_path / "r.json").read_text())["qemu_argv"]
    assert argv[argv.index("-cpu") + 1] == "cortex-a57"
    assert "page_poison=1" in argv[argv.index("-append") + 1]


@pytest.mark.timeout(600)
def test_a_silent_boot_names_the_cpu_model_and_what_to_try(
        guest_factory: object, tmp_path: Path) -> None:
    with pytest.raises(BootError) as e:
        guest_factory("aarch64", kernel="v4.14.2",  # type: ignore[operator]
                      cpu="max,pauth-impdef=on", idle_timeout=20.0, ssh=False)
    assert "-cpu max,pauth-impdef=on" in str(e.value)
    assert "try --cpu cortex-a57" in str(e.value)
