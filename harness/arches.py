"""Each guest architecture as a small frozen description, and the one QEMU argv builder.

Machine knowledge lives in the ARCHES table, not in `if` chains elsewhere.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .kversion import older_than


@dataclass(frozen=True)
class Arch:
    """What the harness must know to boot, build for and package one architecture."""

    name: str  # our name, as in --arch
    qemu_binary: str
    qemu_package: str  # Debian package providing qemu_binary
    machine: str
    cpu: str
    console: str  # serial console device in the guest
    net_device: str  # QEMU device model for the guest NIC
    debian_arch: str  # dpkg architecture name
    kernel_arch: str  # ARCH= for the kernel build
    kernel_image: str  # image path inside a kernel build tree
    cross_compile: str  # CROSS_COMPILE= prefix; empty when native
    c_compiler: str  # compiler for the guest programs
    c_compiler_package: str
    host_machines: tuple[str, ...]  # `uname -m` values on which KVM can run this arch
    extra_args: tuple[str, ...] = field(default=())
    old_kernel_cpu: str = ""  # TCG CPU model for kernels older than old_kernel_before
    old_kernel_before: str = ""

    def can_use_kvm(self) -> bool:
        return platform.machine() in self.host_machines

    def cpu_for(self, release: str | None) -> str:
        """The TCG CPU model for a kernel: the default, or the old model for an old one."""
        if self.old_kernel_cpu and older_than(release, self.old_kernel_before):
            return self.old_kernel_cpu
        return self.cpu


ARCHES: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        Arch(
            name="x86_64",
            qemu_binary="qemu-system-x86_64",
            qemu_package="qemu-system-x86",
            machine="q35",
            cpu="max",
            console="ttyS0",
            net_device="virtio-net-pci",
            debian_arch="amd64",
            kernel_arch="x86",
            kernel_image="arch/x86/boot/bzImage",
            cross_compile="",
            c_compiler="gcc",
            c_compiler_package="gcc",
            host_machines=("x86_64",),
        ),
        Arch(
            name="aarch64",
            qemu_binary="qemu-system-aarch64",
            qemu_package="qemu-system-arm",
            machine="virt",
            # pauth-impdef: QEMU's cheap pointer-auth hash; the architected one is slow in TCG.
            cpu="max,pauth-impdef=on",
            # QEMU 7.2's `max` hangs Linux 4.14.2 before its first console byte; the
            # oldest kernel seen to boot with it here is 6.1. cortex-a57 (ARMv8.0)
            # boots both.
            old_kernel_cpu="cortex-a57",
            old_kernel_before="6.1",
            console="ttyAMA0",
            net_device="virtio-net-pci",
            debian_arch="arm64",
            kernel_arch="arm64",
            kernel_image="arch/arm64/boot/Image",
            cross_compile="aarch64-linux-gnu-",
            c_compiler="aarch64-linux-gnu-gcc",
            c_compiler_package="gcc-aarch64-linux-gnu",
            host_machines=("aarch64",),
        ),
    )
}

ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def get_arch(name: str) -> Arch:
    """Look an arch up by name (or its Debian alias); unknown names list the valid ones."""
    key = ALIASES.get(name, name)
    try:
        return ARCHES[key]
    except KeyError:
        valid = ", ".join(sorted(ARCHES))
        raise UsageError(f"unknown arch {name!r}; valid arches: {valid} (or 'all')") from None


def parse_arch_list(names: Sequence[str]) -> list[Arch]:
    """`--arch` values: repeatable, comma-separated, or 'all'; order kept, duplicates dropped."""
    result: list[Arch] = []
    for item in names:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            chosen = list(ARCHES.values()) if part == "all" else [get_arch(part)]
            result.extend(a for a in chosen if a not in result)
    if not result:
        raise UsageError("no arch given; valid arches: " + ", ".join(sorted(ARCHES)))
    return result


@dataclass(frozen=True)
class GuestSpec:
    """Everything that shapes one QEMU invocation apart from the arch."""

    kernel: Path
    initrd: Path
    cmdline: str
    console_log: Path
    cpus: int = 2
    memory_mb: int = 1024
    accel: str = "tcg"  # "tcg" or "kvm"; "auto" is resolved before this point
    ssh_port: int | None = None  # host port forwarded to the guest's port 22 on 127.0.0.1
    tcg_threads: str = "multi"
    cpu: str | None = None  # TCG CPU model; None: the arch's default
    interactive: bool = False  # console on the user's terminal, with QEMU's Ctrl-A keys


def qemu_option_value(value: object) -> str:
    """A value (a path) inside a QEMU `key=value,...` option string: QEMU reads ",," as a
    literal comma, so a comma in a path cannot end the value and inject an option."""
    return str(value).replace(",", ",,")


def qemu_argv(arch: Arch, spec: GuestSpec) -> list[str]:
    """The full QEMU command line for `arch` booting `spec`, as an argv list."""
    if spec.accel == "kvm":
        accel = ["-accel", "kvm"]
        cpu = "host"
    elif spec.accel == "tcg":
        accel = ["-accel", f"tcg,thread={spec.tcg_threads}"]
        cpu = spec.cpu or arch.cpu
    else:
        raise UsageError(f"unknown accel {spec.accel!r}; valid: tcg, kvm, auto")
    if spec.interactive:
        chardev_mode, monitor = "mux=on,signal=off", ["-mon", "chardev=con0,mode=readline"]
    else:
        chardev_mode, monitor = "signal=off", ["-monitor", "none"]
    logfile = qemu_option_value(spec.console_log)
    argv = [
        arch.qemu_binary,
        "-M", arch.machine,
        *accel,
        "-cpu", cpu,
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mb),
        # -kernel and -initrd take a bare file name (no key=value parsing, so no escaping).
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", spec.cmdline,
        "-nodefaults",
        "-display", "none",
        "-no-reboot",
        # QEMU writes every console byte to the log itself, so nothing is lost if we die.
        "-chardev", f"stdio,id=con0,{chardev_mode},logfile={logfile}",
        "-serial", "chardev:con0",
        *monitor,
        *arch.extra_args,
    ]
    if spec.ssh_port is not None:
        argv += [
            "-netdev",
            f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
            "-device", f"{arch.net_device},netdev=net0",
        ]
    return argv


def base_cmdline(arch: Arch) -> list[str]:
    """Kernel arguments every guest gets: console, reboot-on-panic (QEMU exits via -no-reboot)."""
    return [f"console={arch.console}", "panic=-1"]
