"""Host programs the harness needs, the Debian packages that provide them, and `doctor`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from .arches import ARCHES, Arch
from .errors import MissingToolError


@dataclass(frozen=True)
class Tool:
    program: str
    package: str
    why: str


COMMON_TOOLS: tuple[Tool, ...] = (
    Tool("apt-get", "apt", "fetching Debian kernels and guest packages"),
    Tool("dpkg-deb", "dpkg", "unpacking Debian packages"),
    Tool("make", "make", "building guest programs"),
)

BUSYBOX_PACKAGE = "busybox-static"
DROPBEAR_PACKAGE = "dropbear-bin"


def arch_tools(arch: Arch) -> tuple[Tool, ...]:
    return (
        Tool(arch.qemu_binary, arch.qemu_package, f"booting {arch.name} guests"),
        Tool(arch.c_compiler, arch.c_compiler_package, f"compiling {arch.name} guest programs"),
    )


def require(tool: Tool) -> str:
    """Path of `tool`, or MissingToolError naming the package to install."""
    path = shutil.which(tool.program)
    if path is None:
        raise MissingToolError(tool.program, tool.package)
    return path


def missing_tools(arches: list[Arch] | None = None) -> list[Tool]:
    wanted = list(COMMON_TOOLS)
    for arch in arches if arches is not None else list(ARCHES.values()):
        wanted.extend(arch_tools(arch))
    return [t for t in wanted if shutil.which(t.program) is None]


def doctor_report(arches: list[Arch] | None = None) -> tuple[bool, str]:
    """(all present, a human report with the exact install command for what is missing)."""
    missing = missing_tools(arches)
    if not missing:
        return True, "all host tools are present"
    lines = ["missing host tools:"]
    lines += [f"  {t.program:<24} (package {t.package}): needed for {t.why}" for t in missing]
    packages = " ".join(sorted({t.package for t in missing}))
    lines.append(f"install them with:\n  sudo apt-get install -y {packages}")
    return False, "\n".join(lines)
