"""Host programs the harness needs, the Debian packages that provide them, and `doctor`.

What the host needs is one list, configs/host-packages.txt: ./bootstrap installs it and
`oomrace doctor` checks it, each package by a command or file that proves it installed.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arches import ARCHES, Arch
from .errors import MissingToolError, UsageError
from .paths import data_path

HOST_PACKAGES_FILE = data_path("configs") / "host-packages.txt"

BUSYBOX_PACKAGE = "busybox-static"
DROPBEAR_PACKAGE = "dropbear-bin"


@dataclass(frozen=True)
class Tool:
    program: str
    package: str
    why: str


@dataclass(frozen=True)
class HostPackage:
    """One line of configs/host-packages.txt."""

    package: str
    proof: str  # a command on PATH, or an absolute path (a glob) the package installs
    arches: str  # "all", or the one guest arch that needs it
    why: str

    def needed_for(self, arches: list[Arch]) -> bool:
        return self.arches == "all" or any(a.name == self.arches for a in arches)

    def installed(self) -> bool:
        if self.proof.startswith("/"):
            return bool(glob.glob(self.proof))
        return shutil.which(self.proof) is not None


def host_packages(path: Path = HOST_PACKAGES_FILE) -> tuple[HostPackage, ...]:
    """The packages listed in `path` (bootstrap reads the same lines with bash)."""
    packages = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 3)
        if len(fields) < 4 or (fields[2] != "all" and fields[2] not in ARCHES):
            raise UsageError(f"{path}:{number}: expected 'package proof arches why', "
                             f"arches 'all' or one of {', '.join(ARCHES)}: {line!r}")
        packages.append(HostPackage(*fields))
    return tuple(packages)


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


@dataclass(frozen=True)
class DoctorReport:
    checked: tuple[HostPackage, ...]
    missing: tuple[HostPackage, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def text(self) -> str:
        """A human report with the exact install command for what is missing."""
        if self.ok:
            return "all host tools are present"
        lines = ["missing host tools:"]
        lines += [f"  {p.proof:<24} (package {p.package}): needed for {p.why}"
                  for p in self.missing]
        packages = " ".join(sorted({p.package for p in self.missing}))
        lines.append(f"install them with:\n  sudo apt-get install -y {packages}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": [p.package for p in self.checked],
                "missing": [{"package": p.package, "proof": p.proof, "why": p.why}
                            for p in self.missing]}


def doctor(arches: list[Arch] | None = None) -> DoctorReport:
    """Which host packages the given arches (default all) need, and which are missing."""
    wanted = tuple(p for p in host_packages()
                   if p.needed_for(arches if arches is not None else list(ARCHES.values())))
    return DoctorReport(wanted, tuple(p for p in wanted if not p.installed()))


def doctor_report(arches: list[Arch] | None = None) -> tuple[bool, str]:
    """(all present, the human report)."""
    report = doctor(arches)
    return report.ok, report.text()
