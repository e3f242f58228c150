"""A lab cell as a LAVA job definition (device type `qemu`), and the device dictionary that
lets the dispatcher alone (`lava-run`) run it.

Written from LAVA's job schema (lava_common/schemas: deploy `to: tmpfs` with `images`,
boot `method: qemu`, `media: tmpfs`, a `test` action with `interactive` scripts, a
`timeout` per action) and the variables the server's qemu device type reads from a job's
`context` (arch, cpu, machine, memory, no_kvm, extra_options).

The test is the local engine's guest command, batch for batch: the same `oomrace-stress`
argv (harness.stress.StressOptions.argv) in the same batches (25 iterations, at most 10 s,
until the cell's iterations or duration are spent; StressWorkload), each batch's output
framed by markers in the console so that harness.lab.lava_log reads it back.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arches import base_cmdline, get_arch
from ..errors import UsageError
from ..kernel.image import KernelImage
from ..stress import EXIT_CLEAN, EXIT_CORRUPTED, StressOptions
from ..workload import StressWorkload, get_workload
from .matrix import Cell, is_stress

PROMPT = "oomrace# "  # rootfs/init's PS1
# Markers the guest prints; the command that prints them never contains them literally
# (printf assembles them), so the console's echo of the command cannot be taken for one.
MARK = "OOMRACE-LAVA"
BATCH_BEGIN = f"{MARK}-BATCH-BEGIN"
BATCH_END = f"{MARK}-BATCH-END"
DONE = f"{MARK}-DONE"
# LAVA's names for our arches in a job's context and the device type's templates.
LAVA_ARCH = {"aarch64": "arm64", "x86_64": "x86_64"}
BOOT_MARGIN_S = 120  # deploying and starting QEMU, on top of the cell's boot timeout


@dataclass(frozen=True)
class JobImages:
    """Where the worker finds a cell's kernel and initramfs: file:// URLs for a worker on
    this machine, or URLs under --lava-images-url for a remote lab."""

    kernel: str
    ramdisk: str


def image_url(path: Path, base_url: str | None, root: Path) -> str:
    """`path` as the worker sees it: under base_url (relative to root, the night's
    folder) when given, else as a file:// URL."""
    if base_url is None:
        return path.resolve().as_uri()
    relative = path.resolve().relative_to(root.resolve())
    return base_url.rstrip("/") + "/" + relative.as_posix()


def stress_workload(cell: Cell) -> StressWorkload:
    if not is_stress(cell.scenario):
        raise UsageError(f"cell {cell.id}: the LAVA engine runs stress scenarios, not "
                         f"{cell.scenario!r}; run it with --engine local")
    workload = get_workload(cell.scenario, iterations=cell.iterations,
                            duration_s=cell.duration_s, seed=cell.seed, writers=cell.writers)
    if not isinstance(workload, StressWorkload):
        raise UsageError(f"cell {cell.id}: the LAVA engine runs stress scenarios, not "
                         f"{cell.scenario!r}; run smoke cells with --engine local")
    return workload


def guest_script(cell: Cell) -> str:
    """One shell command line for the guest's busybox sh: the batches of the cell."""
    workload = stress_workload(cell)
    options = workload.options
    argv = StressOptions(**{**options.__dict__, "iterations": 1, "duration_s": 1.0}).argv()
    # The batch's own count and seconds replace the placeholders.
    argv[argv.index("--iterations") + 1] = "$count"
    argv[argv.index("--duration") + 1] = "$left"
    stress = " ".join(a if a.startswith("$") else shlex.quote(a) for a in argv)
    total, step = workload.iterations, workload.batch_iterations
    most = int(workload.batch_seconds)
    # The loop of StressWorkload.run: batches of `step` iterations and at most `most`
    # seconds until the duration (and the iterations, when set) are spent; it stops after
    # a batch that errs or makes no progress, as BatchTally does.
    return (
        f"n=0; done=0; end=$(( $(date +%s) + {round(workload.duration_s)} )); "
        f"while [ $(date +%s) -lt $end ] && {{ [ {total} -eq 0 ] || [ $done -lt {total} ]; }}; "
        f"do left=$(( end - $(date +%s) )); [ $left -lt 1 ] && left=1; "
        f"[ $left -gt {most} ] && left={most}; count={step}; "
        f"[ {total} -gt 0 ] && [ $(( {total} - done )) -lt {step} ] && "
        f"count=$(( {total} - done )); "
        f"printf '{MARK}-BATCH-%s %d\\n' BEGIN $n; "
        f"{stress} > /tmp/oomrace-batch 2>&1; rc=$?; cat /tmp/oomrace-batch; "
        f"printf '{MARK}-BATCH-%s %d %d\\n' END $n $rc; "
        "it=$(sed -n 's/.*\"event\": *\"summary\".*\"iterations\": *\\([0-9]*\\).*/\\1/p' "
        "/tmp/oomrace-batch | tail -n 1); "
        f"[ $rc -ne {EXIT_CLEAN} ] && [ $rc -ne {EXIT_CORRUPTED} ] && break; "
        "[ -z \"$it\" ] && break; [ \"$it\" -eq 0 ] && break; "
        "done=$(( done + it )); n=$(( n + 1 )); "
        f"done; printf '{MARK}-%s\\n' DONE"
    )


def job_context(cell: Cell, image: KernelImage) -> dict[str, Any]:
    """What the server's qemu device type makes QEMU's options from (the same machine as
    the local engine's: CPU model, memory, vCPUs, TCG)."""
    arch = get_arch(cell.arch)
    cpu = arch.cpu_for(image.release)
    extra = [f"-smp {cell.cpus}", "-accel tcg,thread=multi", "-no-reboot"]
    context: dict[str, Any] = {"arch": LAVA_ARCH[arch.name], "memory": cell.memory_mb,
                               "no_kvm": True}
    if arch.name == "aarch64":
        context.update(cpu=cpu, machine=arch.machine)
    else:  # the device type sets neither for x86 without KVM
        extra = [f"-machine {arch.machine}", f"-cpu {cpu}", *extra]
    context["extra_options"] = extra
    return context


def kernel_cmdline(cell: Cell, image: KernelImage) -> str:
    args = [*base_cmdline(get_arch(cell.arch)), *image.debug_cmdline(), *image.cmdline_extra]
    return " ".join(dict.fromkeys(args))


def _minutes(seconds: float) -> dict[str, int]:
    return {"minutes": max(1, int(-(-seconds // 60)))}


def job_definition(cell: Cell, image: KernelImage, images: JobImages,
                   night: str = "") -> dict[str, Any]:
    """The LAVA job of one cell: deploy our kernel and initramfs, boot them under QEMU,
    run the cell's batches at our shell prompt."""
    test_s = cell.duration_s + 60 + 30  # the last batch's grace, reading its output
    boot_s = cell.boot_timeout + BOOT_MARGIN_S
    job_s = max(cell.timeout, test_s + boot_s) + 300
    return {
        "job_name": f"oomrace {night} {cell.id}".replace("  ", " "),
        "device_type": "qemu",
        "visibility": "public",
        "priority": "medium",
        "context": job_context(cell, image),
        "metadata": {"oomrace.cell": cell.id, "oomrace.night": night},
        "timeouts": {"job": _minutes(job_s), "action": _minutes(boot_s),
                     # how long the console may stay silent while a test waits for a line
                     "connection": _minutes(test_s)},
        "actions": [
            {"deploy": {"to": "tmpfs", "timeout": _minutes(BOOT_MARGIN_S), "images": {
                "kernel": {"url": images.kernel, "image_arg":
                           f"-kernel {{kernel}} -append \"{kernel_cmdline(cell, image)}\""},
                "ramdisk": {"url": images.ramdisk, "image_arg": "-initrd {ramdisk}"}}}},
            {"boot": {"method": "qemu", "media": "tmpfs", "timeout": _minutes(boot_s),
                      "prompts": [PROMPT]}},
            {"test": {"timeout": _minutes(test_s), "interactive": [{
                "name": "oomrace", "prompts": [PROMPT],
                "script": [{"name": cell.scenario, "command": guest_script(cell),
                            "successes": [{"message": DONE}]}]}]}},
        ],
    }


def device_dictionary(context: Mapping[str, Any]) -> dict[str, Any]:
    """The device configuration of a `qemu` device for `lava-run`, made from a job's
    context as the server's qemu device type makes it (the options our jobs use)."""
    arch = str(context["arch"])
    binary = "qemu-system-aarch64" if arch in ("arm64", "aarch64") else "qemu-system-x86_64"
    options = []
    if arch in ("arm64", "aarch64"):
        options += [f"-cpu {context.get('cpu', 'cortex-a57')}",
                    f"-machine {context.get('machine', 'virt')}"]
    elif not context.get("no_kvm"):
        options += ["-cpu host", "-enable-kvm"]
    options += ["-nographic", "-net nic,model=virtio,macaddr=52:54:00:12:34:58 -net user",
                f"-m {context.get('memory', 512)}", "-monitor none"]
    method: dict[str, Any] = {"command": binary, "options": options}
    if context.get("extra_options"):
        method["extra"] = list(context["extra_options"])
    return {
        "constants": {
            "shutdown-message": "The system is going down for reboot NOW",
            "kernel-start-message": "Linux version [0-9]",
            "default-shell-prompt": "lava-test: # ",
            "posix": {"lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s",
                      "lava_test_shell_file": "~/.bashrc"},
            "spawn_maxread": 4092, "failure_retry": 1, "boot_retry": 1,
        },
        "available_architectures": ["arm64", "aarch64", "amd64", "x86_64"],
        "actions": {
            "deploy": {"methods": {"tmpfs": None,
                                   "image": {"parameters": {"guest": {"size": 512}}}}},
            "boot": {"connections": {"serial": None}, "methods": {"qemu": {
                "parameters": method}}},
        },
        "timeouts": {"actions": {}, "connections": {}},
    }
