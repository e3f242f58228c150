from pathlib import Path

import pytest

from harness.arches import ARCHES, GuestSpec, get_arch, parse_arch_list, qemu_argv
from harness.errors import UsageError


def spec(tmp_path: Path, **kw: object) -> GuestSpec:
    return GuestSpec(kernel=tmp_path / "k", initrd=tmp_path / "i", cmdline="console=x",
                     console_log=tmp_path / "c.log", **kw)  # type: ignore[arg-type]


def test_unknown_arch_lists_valid_ones() -> None:
    with pytest.raises(UsageError) as e:
        get_arch("riscv64")
    assert "riscv64" in str(e.value)
    for name in ARCHES:
        assert name in str(e.value)


def test_arch_list_all_comma_and_aliases() -> None:
    assert [a.name for a in parse_arch_list(["all"])] == ["x86_64", "aarch64"]
    assert [a.name for a in parse_arch_list(["arm64,x86_64", "aarch64"])] == ["aarch64", "x86_64"]


@pytest.mark.parametrize(("arch", "machine", "console"),
                         [("x86_64", "q35", "ttyS0"), ("aarch64", "virt", "ttyAMA0")])
def test_argv_per_arch(tmp_path: Path, arch: str, machine: str, console: str) -> None:
    a = get_arch(arch)
    argv = qemu_argv(a, spec(tmp_path, cpus=4, memory_mb=768, ssh_port=2222))
    assert argv[0] == a.qemu_binary
    assert argv[argv.index("-M") + 1] == machine
    assert argv[argv.index("-smp") + 1] == "4"
    assert argv[argv.index("-m") + 1] == "768"
    assert a.console == console
    netdev = argv[argv.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in netdev and "restrict=on" in netdev
    assert f"logfile={tmp_path / 'c.log'}" in argv[argv.index("-chardev") + 1]
    assert "-no-reboot" in argv


def test_aarch64_uses_cheap_pointer_auth(tmp_path: Path) -> None:
    argv = qemu_argv(get_arch("aarch64"), spec(tmp_path))
    assert argv[argv.index("-cpu") + 1] == "max,pauth-impdef=on"
    assert "-netdev" not in argv  # no port unless asked


def test_kvm_uses_host_cpu_and_bad_accel_is_refused(tmp_path: Path) -> None:
    argv = qemu_argv(get_arch("x86_64"), spec(tmp_path, accel="kvm"))
    assert argv[argv.index("-cpu") + 1] == "host"
    with pytest.raises(UsageError, match="unknown accel"):
        qemu_argv(get_arch("x86_64"), spec(tmp_path, accel="hvf"))


def test_cpu_model_follows_the_kernel_version(tmp_path: Path) -> None:
    arm = get_arch("aarch64")
    assert arm.cpu_for("4.14.2") == "cortex-a57"  # QEMU 7.2's max hangs it
    assert arm.cpu_for("6.1.0-56-arm64") == arm.cpu
    assert arm.cpu_for(None) == arm.cpu
    x86 = get_arch("x86_64")
    assert x86.cpu_for("4.14.2") == x86.cpu
    argv = qemu_argv(arm, spec(tmp_path, cpu="cortex-a57"))
    assert argv[argv.index("-cpu") + 1] == "cortex-a57"
    argv = qemu_argv(arm, spec(tmp_path, accel="kvm", cpu="cortex-a57"))
    assert argv[argv.index("-cpu") + 1] == "host"  # KVM runs the host's CPU


def test_host_cpu_set_restricts_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import machine

    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert machine.host_cpu_set(0) == set() and machine.host_cpu_set(4) == set()
    one = machine.host_cpu_set(1)
    assert len(one) == 1 and one <= {0, 1, 2, 3}
    assert len(machine.host_cpu_set(3)) == 3
