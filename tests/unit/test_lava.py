"""The LAVA engine's logic without LAVA: job definitions, the guest's batch loop, a job log
read back into batches and a verdict, and the server options (the token never shown)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.errors import UsageError
from harness.kernel.image import KernelImage
from harness.lab import lava_job, lava_log
from harness.lab.lava import TOKEN_ENV, target_from_args
from harness.lab.matrix import Cell

CELL = Cell(arch="aarch64", kernel="v6.1-reaper-fullmm", scenario="mrelease", iterations=50,
            duration_s=20, seed=1, expected="corrupted")


def image(arch: str = "aarch64") -> KernelImage:
    return KernelImage(arch=get_arch(arch), path=Path("/cache/Image"), description="test kernel",
                       release="6.1.192", cmdline_extra=("page_poison=1",))


def entry(level: str, msg: object) -> str:
    return json.dumps({"dt": "2026-01-01T00:00:00.000000", "lvl": level, "msg": msg})


def target(line: str) -> str:
    """A console line as the dispatcher logs it: a backslash before each double quote."""
    return entry("target", line.replace('"', '\\"'))


def batch(n: int, iterations: int, rc: int = 0, corruptions: int = 0) -> list[str]:
    summary = {"event": "summary", "scenario": "mrelease", "status":
               "clean" if rc == 0 else "corrupted", "exit_code": rc, "elapsed": 9.5,
               "iterations": iterations, "reaps": iterations, "corruptions": corruptions}
    start = {"event": "start", "scenario": "mrelease", "iterations": 25}
    return [target(f"OOMRACE-LAVA-BATCH-BEGIN {n}"), target(json.dumps(start)),
            target(json.dumps(summary)), target(f"OOMRACE-LAVA-BATCH-END {n} {rc}")]


def test_job_definition_has_our_images_boot_test_and_a_timeout_per_action() -> None:
    job = lava_job.job_definition(CELL, image(), lava_job.JobImages("file:///k", "file:///r"))
    assert job["device_type"] == "qemu"
    assert job["context"] == {"arch": "arm64", "memory": 1024, "no_kvm": True,
                              "cpu": "max,pauth-impdef=on", "machine": "virt",
                              "extra_options": ["-smp 8", "-accel tcg,thread=multi",
                                                "-no-reboot"]}
    deploy, boot, test = (next(iter(a.values())) for a in job["actions"])
    assert deploy["to"] == "tmpfs" and deploy["images"]["ramdisk"]["url"] == "file:///r"
    assert '-append "console=ttyAMA0 panic=-1 page_poison=1"' in \
        deploy["images"]["kernel"]["image_arg"]
    # boot_timeout 300 s + 120 s to deploy and start QEMU
    assert boot == {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": 7},
                    "prompts": ["oomrace# "]}
    script = test["interactive"][0]["script"][0]
    assert script["successes"] == [{"message": "OOMRACE-LAVA-DONE"}]
    # the marker is assembled by printf: the console's echo of the command never has it
    assert "OOMRACE-LAVA-DONE" not in script["command"]
    assert all("timeout" in a for action in job["actions"] for a in action.values())


def test_x86_job_names_machine_and_cpu_itself() -> None:
    cell = Cell(arch="x86_64", kernel="debian", scenario="oom", duration_s=20)
    context = lava_job.job_context(cell, image("x86_64"))
    assert context["arch"] == "x86_64" and "cpu" not in context
    assert context["extra_options"][:2] == ["-machine q35", "-cpu max"]
    device = lava_job.device_dictionary(context)
    qemu = device["actions"]["boot"]["methods"]["qemu"]["parameters"]
    assert qemu["command"] == "qemu-system-x86_64" and "-enable-kvm" not in qemu["options"]


def test_smoke_cells_are_refused_with_the_fix() -> None:
    with pytest.raises(UsageError, match="--engine local"):
        lava_job.guest_script(Cell(arch="x86_64", kernel="debian", scenario="smoke"))


@pytest.mark.skipif(shutil.which("busybox") is None and shutil.which("dash") is None,
                    reason="needs a POSIX sh")
def test_guest_script_runs_the_batches_of_the_local_engine(tmp_path: Path) -> None:
    """The batch loop under a real sh, with a stand-in oomrace-stress that records its
    arguments and reports 20 iterations a batch: 50 iterations are 25 + 25 (capped by
    what is left), then the loop ends and prints its last marker."""
    fake = tmp_path / "oomrace-stress"
    fake.write_text('#!/bin/sh\necho "$@" >> ' + str(tmp_path / "calls") + '\n'
                    'echo \'{"event":"summary","exit_code":0,"iterations":25}\'\n')
    fake.chmod(0o755)
    script = lava_job.guest_script(CELL).replace("/bin/oomrace-stress", str(fake))
    script = script.replace("/tmp/oomrace-batch", str(tmp_path / "batch"))
    sh = shutil.which("dash") or "sh"
    out = subprocess.run([sh, "-c", script], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2 and all("--iterations 25" in c and "--seed 1" in c for c in calls)
    assert out.splitlines()[-1] == "OOMRACE-LAVA-DONE"
    assert "OOMRACE-LAVA-BATCH-END 1 0" in out


def test_log_into_batches_reports_and_a_verdict() -> None:
    # as our aarch64 v6.1-reaper-fullmm guest printed it under lava-run
    report = ["[   15.353494] pagealloc: memory corruption",
              "[   15.354040] (____ptrval____): 00 00 00 00                        ....",
              "[   15.375077] CPU: 5 PID: 107 Comm: oomrace-stress Not tainted 6.1.192 #1 ",
              "[   15.375345] Hardware name: linux,dummy-virt (DT)",
              "[   15.375632] Call trace:",
              "[   15.375737]  dump_backtrace.part.0+0x94/0xc4",
              "[   15.375937]  show_stack+0x14/0x1c",
              "[   15.376138]  __kernel_unpoison_pages+0x120/0x160",
              "[   15.376223]  post_alloc_hook+0x78/0xd0",
              "[   15.376276]  get_page_from_freelist+0x4cc/0x5b0",
              "[   15.403858] page dumped because: pagealloc: corrupted page details"]
    lines = [entry("info", "start: 2 boot-qemu-image (timeout 00:06:00) [common]"),
             target("OOMRACE-READY ssh=0"),
             entry("info", "end: 2 boot-qemu-image (duration 00:00:12) [common]"),
             *batch(0, 25), *[target(r) for r in report], *batch(1, 25, rc=0),
             target("OOMRACE-LAVA-DONE"),
             entry("results", {"definition": "lava", "case": "job", "result": "pass"})]
    log = lava_log.parse_log(["- " + line for line in lines])  # the server's YAML list form
    assert log.job_result == "pass" and log.test_finished
    assert '{"event": "start"' in log.console_text and '\\"' not in log.console_text
    workload = lava_log.workload_result(log, "mrelease")
    stress = workload.stress
    assert stress is not None and stress.trials == 2 and stress.iterations == 50
    assert [b.detected for b in stress.batches] == [False, True]
    assert stress.batches[1].kernel_reports >= 1 and workload.status == "corrupted"


def test_a_job_that_ended_early_is_an_error_with_lavas_reason() -> None:
    lines = [*batch(0, 25), entry("error", "JobError: the guest stopped answering")]
    workload = lava_log.workload_result(lava_log.parse_log(lines), "mrelease")
    assert workload.status == "error" and workload.stress is not None
    assert "ended before our test finished: JobError" in (workload.stress.error or "")


def test_server_options_need_a_token_and_never_show_it(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(UsageError, match=TOKEN_ENV):
        target_from_args("lava", "https://lava.test", "ci", None, None, None)
    with pytest.raises(UsageError, match="without a user or token"):
        target_from_args("lava", "https://ci:secret@lava.test", "ci", None, None, None)
    with pytest.raises(UsageError, match="--lava-url URL"):
        target_from_args("lava", None, None, None, None, None)
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    got = target_from_args("lava", "https://lava.test", "ci", None, token, None)
    assert got.url == "https://lava.test/RPC2" and got.token == "s3cr3t-token"
    assert "s3cr3t" not in repr(got) and "s3cr3t" not in str(got)
    with pytest.raises(UsageError, match="this machine"):
        target_from_args("lava-run", "https://lava.test", None, None, None, None)
