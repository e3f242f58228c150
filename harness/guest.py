"""A booted guest with its two command runners; dmesg is collected on the way out.

Layers: Machine (QEMU process) -> ConsoleStream (serial bytes) -> SerialRunner / SSHRunner.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from . import accel, rootfs
from .arches import Arch, GuestSpec, base_cmdline
from .console import SerialRunner
from .errors import GuestCommandError, HarnessError
from .kernel.image import KernelImage
from .kernel_log.stream import ConsoleFile
from .machine import Machine, MachineOptions, machine_options
from .runner import Command, CommandResult, Runner
from .ssh import RunKey, SSHRunner

log = logging.getLogger(__name__)


def guest_cmdline(arch: Arch, kernel: KernelImage, key: RunKey,
                  extra: tuple[str, ...] = ()) -> str:
    """The kernel command line of every guest: console, the run's SSH key, the kernel's
    debug options and its own extras, then the caller's; each argument once."""
    args = [*base_cmdline(arch), f"oomrace.sshkey={key.public_base64}",
            *kernel.debug_cmdline(), *kernel.cmdline_extra, *extra]
    return " ".join(dict.fromkeys(args))


def guest_spec(arch: Arch, kernel: KernelImage, initrd: Path, key: RunKey,
               options: MachineOptions, console_log: Path, interactive: bool = False
               ) -> GuestSpec:
    """The QEMU spec of a guest from its machine options: the one path from --append and
    --cpu (MachineOptions.cmdline_extra, .cpu) to qemu_argv, for `run`, `boot`, `bisect`,
    the pytest plugin and the lab alike."""
    return GuestSpec(
        kernel=kernel.path, initrd=initrd,
        cmdline=guest_cmdline(arch, kernel, key, options.cmdline_extra),
        console_log=console_log, cpus=options.cpus, memory_mb=options.memory_mb,
        accel="tcg" if options.accel == "auto" else options.accel,
        cpu=options.cpu or arch.cpu_for(kernel.release), interactive=interactive)


@dataclass
class GuestArtifacts:
    workdir: Path
    console_log: Path
    dmesg: Path
    qemu_argv: list[str] = field(default_factory=list)


class Guest:
    """Boot `kernel` for `arch` with the project's initramfs; `run()` commands inside."""

    def __init__(self, arch: Arch, kernel: KernelImage, workdir: Path,
                 options: MachineOptions | None = None,
                 initramfs: rootfs.Initramfs | None = None,
                 extra_initrd: tuple[Path, ...] = ()) -> None:
        if kernel.arch != arch:
            raise HarnessError(f"kernel {kernel.description} is for {kernel.arch.name}, "
                               f"not {arch.name}")
        self.arch = arch
        self.kernel = kernel
        self.workdir = workdir
        self.options = options or MachineOptions()
        self._initramfs = initramfs
        self._extra_initrd = extra_initrd  # cpio archives appended (a user's reproducer)
        self.machine: Machine | None = None
        self.serial: SerialRunner | None = None
        self.ssh: SSHRunner | None = None
        self.dmesg_text: str | None = None
        self.accel = self.options.accel
        self.artifacts = GuestArtifacts(workdir, workdir / "console.log", workdir / "dmesg.txt")
        # The one parse of this guest's console: workloads, the run's end and the pytest
        # plugin all ask it, and it reads each byte of the log once.
        self.console_reader = ConsoleFile(self.artifacts.console_log)

    # --- boot -------------------------------------------------------------------------

    def _machine(self, options: MachineOptions, key: RunKey, tag: str = "") -> Machine:
        initramfs = self._initramfs or rootfs.build(self.arch)
        self._initramfs = initramfs
        initrd = rootfs.initrd_for(initramfs, self.kernel.modules_cpio, self.workdir,
                                   self._extra_initrd)
        spec = guest_spec(self.arch, self.kernel, initrd, key, options,
                          self.workdir / f"console{tag}.log")
        return Machine(self.arch, spec, options, self.workdir)

    def _probe_kvm(self, timeout: float) -> None:
        probe = machine_options(cpus=1, memory_mb=512, accel="kvm", boot_timeout=timeout,
                                idle_timeout=timeout, ssh=False)
        with self._machine(probe, RunKey.generate(), tag="-kvm-probe"):
            pass

    def __enter__(self) -> Guest:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.accel = accel.resolve(self.options.accel, self.arch, self._probe_kvm)
        options = replace(self.options, accel=self.accel)
        key = RunKey.generate()
        key_path = self.workdir / "id_ed25519"
        key_path.unlink(missing_ok=True)  # an earlier boot's key here (a resumed bisect step)
        key.save(key_path)
        self.machine = self._machine(options, key)
        try:
            self.machine.__enter__()
            self.artifacts.qemu_argv = self.machine.argv
            self.serial = SerialRunner(self.machine.console)  # type: ignore[arg-type]
            boot = self.machine.boot
            if options.ssh and boot is not None and boot.ssh:
                assert self.machine.spec.ssh_port is not None
                self.ssh = SSHRunner(self.machine.spec.ssh_port, key)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- use --------------------------------------------------------------------------

    @property
    def runner(self) -> Runner:
        """SSH when the guest has it, the serial console otherwise."""
        if self.ssh is not None:
            return self.ssh
        if self.serial is None:
            raise HarnessError("the guest is not running")
        return self.serial

    def run(self, command: Command, timeout: float = 60, check: bool = False) -> CommandResult:
        return self.runner.run(command, timeout, check)

    @property
    def boot_seconds(self) -> float | None:
        if self.machine is None or self.machine.boot is None:
            return None
        return self.machine.boot.seconds

    # --- the way out --------------------------------------------------------------------

    def collect_dmesg(self, timeout: float = 30) -> str | None:
        """Fetch dmesg through whichever runner still answers; write it to dmesg.txt."""
        runners: list[Runner] = [r for r in (self.ssh, self.serial) if r is not None]
        for runner in runners:
            if isinstance(runner, SerialRunner) and runner.busy:
                continue  # the shell is stuck in an earlier command
            try:
                result = runner.run(["dmesg"], timeout)
            except (GuestCommandError, HarnessError) as e:
                log.warning("dmesg over %s failed: %s", runner.name, e)
                continue
            if result.ok:
                self.dmesg_text = result.stdout
                self.artifacts.dmesg.write_text(result.stdout)
                return result.stdout
        self.artifacts.dmesg.write_text(
            "# dmesg could not be read from the guest; the console log holds what the kernel "
            f"printed: {self.artifacts.console_log}\n"
        )
        return None

    def close(self) -> None:
        started = time.monotonic()
        try:
            if self.machine is not None and self.machine.proc is not None \
                    and self.machine.boot is not None and self.dmesg_text is None:
                self.collect_dmesg()
            elif self.machine is not None and self.machine.boot is None:
                self.artifacts.dmesg.write_text(  # a boot that failed: no shell to ask
                    "# the guest did not finish booting, so dmesg could not be read; the "
                    f"console log holds what the kernel printed: {self.artifacts.console_log}\n")
        finally:
            if self.ssh is not None:
                self.ssh.close()
                self.ssh = None
            if self.machine is not None:
                self.machine.close()
            log.debug("guest closed in %.1f s", time.monotonic() - started)
