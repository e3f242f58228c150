"""Choosing the accelerator: TCG unless a bounded KVM probe boot has succeeded here.

Nested KVM on some hosts hangs before the kernel prints anything, so `auto` never
trusts /dev/kvm alone. The probe's answer is remembered per host kernel and QEMU.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

from . import atomicio, cache, proc, schema
from .arches import Arch
from .errors import HarnessError, UsageError

ACCELS = ("tcg", "kvm", "auto")
PROBE_TIMEOUT = 30.0


def _probe_file(arch: Arch) -> Path:
    try:
        qemu = proc.run([arch.qemu_binary, "--version"], timeout=30,
                        check=False).stdout.split("\n")[0]
    except (OSError, HarnessError):  # not installed, or hung: the key says "missing"
        qemu = "missing"
    key = cache.digest("kvm-probe", platform.release(), qemu, arch.name)
    return cache.cache_root() / "probes" / f"kvm-{key}.json"


def check(requested: str) -> None:
    """UsageError unless `requested` is one of ACCELS."""
    if requested not in ACCELS:
        raise UsageError(f"unknown accel {requested!r}; valid: {', '.join(ACCELS)}")


def resolve(requested: str, arch: Arch, probe_boot: Callable[[float], None]) -> str:
    """Turn tcg/kvm/auto into tcg or kvm. `probe_boot(timeout)` boots once with KVM and
    raises HarnessError when that fails."""
    check(requested)
    if requested != "auto":
        return requested
    if not arch.can_use_kvm() or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    record = _probe_file(arch)
    known = atomicio.read_json_object(record)  # a corrupt record is probed again
    if known is not None:
        schema.check_version(known, str(record))
    if known is not None and known.get("accel") in ("tcg", "kvm"):
        return str(known["accel"])
    try:
        probe_boot(PROBE_TIMEOUT)
        accel, reason = "kvm", "probe boot reached the ready marker"
    except HarnessError as e:
        accel, reason = "tcg", f"probe boot with KVM failed: {str(e).splitlines()[0]}"
        warnings.warn(f"KVM is not usable here ({reason}); using TCG", stacklevel=2)
    record.parent.mkdir(parents=True, exist_ok=True)
    atomicio.write_json(record, schema.versioned({"accel": accel, "reason": reason}))
    return accel
