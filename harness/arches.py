"""Each guest architecture as a small frozen description, and the one QEMU argv builder.

Machine knowledge lives in the ARCHES table, not in `if` chains elsewhere.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import UsageError
from .kernel.version import older_than


@dataclass(frozen=True)
class Arch:
    """Everything the harness knows about one architecture: adding an arch is one more
    entry in ARCHES (and its kernels/fragments/virt-<kernel_arch>.config)."""

    name: str  # our name, as in --arch
    # booting it
    qemu_binary: str
    qemu_package: str  # Debian package providing qemu_binary
    machine: str
    cpu: str
    console: str  # serial console device in the guest
    net_device: str  # QEMU device model for the guest NIC
    host_machines: tuple[str, ...]  # `uname -m` values on which KVM can run this arch
    # Debian: packages, guest programs
    debian_arch: str  # dpkg architecture name; also accepted as an --arch alias
    c_compiler: str  # compiler for the guest programs
    c_compiler_package: str
    # building its kernel
    kernel_arch: str  # ARCH= (tuxmake --target-arch); fills {arch} in recipe fragment names
    cross_compile: str  # CROSS_COMPILE= of kernel builds; its gcc's version is in the cache key
    kernel_image: str  # bootable image path inside a kernel build directory
    # recognising its images and logs
    image_magic: tuple[int, bytes]  # (offset, bytes) in the image header
    image_kind: str  # what the image is called, for messages
    elf_machine: int  # e_machine of its vmlinux, to name the arch of a wrongly given ELF
    log_line_starts: tuple[str, ...]  # a console line starting so is from this arch
    log_line_contains: tuple[str, ...]  # ... or containing one of these
    image_gzipped: bool = False  # images may come gzipped (Debian's arm64 vmlinuz)
    extra_args: tuple[str, ...] = field(default=())
    old_kernel_cpu: str = ""  # TCG CPU model for kernels older than old_kernel_before
    old_kernel_before: str = ""

    @property
    def image_name(self) -> str:
        """File name of the bootable image (bzImage, Image), also tuxmake's --kernel-image."""
        return PurePosixPath(self.kernel_image).name

    def can_use_kvm(self) -> bool:
        return platform.machine() in self.host_machines

    def cpu_for(self, release: str | None) -> str:
        """The TCG CPU model for a kernel: the default, or the old model for an old one."""
        if self.old_kernel_cpu and older_than(release, self.old_kernel_before):
            return self.old_kernel_cpu
        return self.cpu

    def kernel_compiler_package(self) -> str:
        """The Debian package with the kernel build's gcc: plain gcc on a native host."""
        if os.uname().machine in self.host_machines:
            return "gcc"
        return "gcc-" + self.cross_compile.rstrip("-").replace("_", "-")

    def is_image_head(self, head: bytes) -> bool:
        """Whether `head` (the first bytes of a file) is this arch's bootable image."""
        offset, magic = self.image_magic
        return head[offset:offset + len(magic)] == magic

    def marks_log_line(self, line: str) -> bool:
        """Whether a console line (registers, trace header) shows a kernel of this arch."""
        return line.startswith(self.log_line_starts) or any(
            marker in line for marker in self.log_line_contains)


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
            c_compiler="gcc",
            c_compiler_package="gcc",
            host_machines=("x86_64",),
            kernel_arch="x86_64",
            cross_compile="x86_64-linux-gnu-",
            kernel_image="arch/x86/boot/bzImage",
            image_magic=(0x202, b"HdrS"),  # the x86 boot protocol's setup header
            image_kind="an x86 bzImage",
            elf_machine=62,
            log_line_starts=("RSP: ", "RAX: "),
            log_line_contains=("RIP: ",),
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
            c_compiler="aarch64-linux-gnu-gcc",
            c_compiler_package="gcc-aarch64-linux-gnu",
            host_machines=("aarch64",),
            kernel_arch="arm64",
            cross_compile="aarch64-linux-gnu-",
            kernel_image="arch/arm64/boot/Image",
            image_magic=(0x38, b"ARM\x64"),  # the arm64 Image header's magic
            image_kind="an arm64 Image",
            image_gzipped=True,
            elf_machine=183,
            log_line_starts=("pc : ", "lr : ", "pstate: "),
            log_line_contains=("Call trace:", "Hardware name: linux,dummy-virt"),
        ),
    )
}


def arch_aliases() -> dict[str, str]:
    """Debian's names for our arches (amd64, arm64), accepted wherever an arch is named."""
    return {a.debian_arch: a.name for a in ARCHES.values() if a.debian_arch != a.name}


ALIASES = arch_aliases()  # for importers that map names themselves; get_arch reads ARCHES


def arch_help(with_all: bool = True) -> str:
    """The arches --arch takes, for help texts: "x86_64, aarch64 or all"."""
    names = [*ARCHES, "all"] if with_all else list(ARCHES)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def get_arch(name: str) -> Arch:
    """Look one arch up by name (or its Debian alias); unknown names list the valid ones
    ('all' is no arch: parse_arch_list takes it where several may be given)."""
    key = arch_aliases().get(name, name)
    try:
        return ARCHES[key]
    except KeyError:
        valid = ", ".join(sorted(ARCHES))
        if name == "all":
            raise UsageError(f"arch 'all': one arch is needed here; give one of {valid}") \
                from None
        raise UsageError(f"unknown arch {name!r}; valid arches: {valid}") from None


def parse_arch_list(names: Sequence[str]) -> list[Arch]:
    """`--arch` values: repeatable, comma-separated, or 'all'; order kept, duplicates dropped."""
    result: list[Arch] = []
    for item in names:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                chosen = list(ARCHES.values()) if part == "all" else [get_arch(part)]
            except UsageError as e:
                raise UsageError(f"{e} (or 'all')") from None
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
