"""Build a kernel tree's mm selftests statically for a guest arch, cached by content.

The tree's UAPI headers are installed for the arch (`make O=... headers_install`, so the
tree itself is never written), then the suite's own Makefile builds every program with
`make -k` and `-static`: what builds is kept (stripped), what does not is recorded with
the compiler's reason (a header or library the host lacks). The cache key is the source's
identity, the arch, the compiler and BUILD_VERSION.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import atomicio, cache, proc, rootfs, schema
from ..arches import Arch
from ..errors import KernelError
from ..kernel.build.source import Source
from .suite import SUITE_DIRS

log = logging.getLogger(__name__)

KIND = "kselftest"
BUILD_VERSION = 2  # bump when the build below changes what an entry holds
RECORD = "build.json"
RUNNER = "kselftest/runner.sh"  # kselftest's runner, as the tree has it
MAKE_TIMEOUT = 1800.0
# Printed by the suite's Makefile, included after it: the programs `make all` builds.
_LIST_MAKEFILE = "oomrace-list:\n\t@echo $(notdir $(TEST_GEN_PROGS) $(TEST_GEN_FILES))\n"


@dataclass(frozen=True)
class SelftestBuild:
    """One suite built for one arch: where its programs are and what was left out."""

    root: Path  # the cache entry: <suite_dir>/<program>, kselftest/runner.sh, build.json
    arch: str
    suite_dir: str  # the tree's folder name: vm or mm
    source: str  # the source's identity
    compiler: str
    built: tuple[str, ...]
    left_out: dict[str, str]  # program -> why it did not build

    @property
    def key(self) -> str:
        return self.root.name

    def program(self, name: str) -> Path:
        return self.root / self.suite_dir / name

    def to_json(self) -> dict[str, object]:
        return schema.versioned({
            "arch": self.arch, "suite_dir": self.suite_dir, "source": self.source,
            "compiler": self.compiler, "built": list(self.built),
            "left_out": dict(self.left_out),
        })

    @classmethod
    def from_json(cls, root: Path, data: dict[str, object]) -> SelftestBuild:
        schema.check_version(data, str(root / RECORD))
        left_out = data["left_out"]
        built = data["built"]
        assert isinstance(left_out, dict) and isinstance(built, list)
        return cls(root=root, arch=str(data["arch"]), suite_dir=str(data["suite_dir"]),
                   source=str(data["source"]), compiler=str(data["compiler"]),
                   built=tuple(str(b) for b in built),
                   left_out={str(k): str(v) for k, v in left_out.items()})


def suite_dir(tree: Path) -> Path:
    """The mm selftests' folder of a kernel tree (`vm` before 6.3, `mm` since)."""
    base = tree / "tools" / "testing" / "selftests"
    for name in SUITE_DIRS:
        if (base / name / "Makefile").is_file():
            return base / name
    raise KernelError(f"{tree} has no mm selftests (looked for {', '.join(SUITE_DIRS)} "
                      f"under {base}); give a kernel tree of 4.x or newer")


def _make(argv: list[str], what: str) -> proc.Completed:
    try:
        return proc.run(["make", *argv], timeout=MAKE_TIMEOUT, check=False, package="make")
    except proc.CommandError as e:
        raise KernelError(f"{what}: {e}") from e


def _install_headers(tree: Path, arch: Arch, out: Path) -> Path:
    done = _make(["-s", "-C", str(tree), f"O={out}", f"ARCH={arch.kernel_arch}",
                  f"INSTALL_HDR_PATH={out / 'usr'}", "headers_install"],
                 "installing the kernel headers")
    if done.returncode != 0:
        raise KernelError(f"installing {tree}'s headers for {arch.name} failed:\n"
                          f"{done.output[-2000:]}")
    return out / "usr" / "include"


# 6.1's mrelease_test uses __NR_process_mrelease and __NR_pidfd_open without including
# <sys/syscall.h>, so against glibc its fallback (-1) makes it skip itself on every kernel
# (ENOSYS); 6.3 added the include. Including it in every program changes no other one.
COMPAT_CFLAGS = "-include sys/syscall.h"


def _suite_args(arch: Arch, out: Path, headers: Path) -> list[str]:
    # MACHINE: the suite picks arch-specific programs by it, from `uname -m` otherwise.
    return [f"MACHINE={arch.kernel_arch}", f"CC={arch.c_compiler}", f"OUTPUT={out}",
            "LDFLAGS=-static", f"EXTRA_CFLAGS={COMPAT_CFLAGS}",
            f"KHDR_INCLUDES=-isystem {headers}"]


def _programs(suite: Path, args: list[str], work: Path) -> list[str]:
    listing = work / "list.mk"
    listing.write_text(_LIST_MAKEFILE)
    done = _make(["-s", "-C", str(suite), "-f", "Makefile", "-f", str(listing), *args,
                  "oomrace-list"], "listing the selftests")
    if done.returncode != 0:
        raise KernelError(f"listing the programs of {suite} failed:\n{done.output[-2000:]}")
    return sorted(set(done.stdout.split()))


def _why_not(suite: Path, args: list[str], out: Path, program: str) -> str:
    """The compiler's own reason, from building `program` alone."""
    done = _make(["-C", str(suite), *args, str(out / program)], f"building {program}")
    errors = [line.strip() for line in done.output.splitlines()
              if re.search(r"fatal error:|error:|cannot find -l", line)
              and "collect2" not in line and not line.startswith("make")]
    return errors[0] if errors else (done.output.strip().splitlines() or ["no output"])[-1]


def _build_into(source: Source, arch: Arch, entry: Path, compiler: str) -> None:
    suite = suite_dir(source.tree)
    with tempfile.TemporaryDirectory(prefix="oomrace-kselftest-") as tmp:
        work = Path(tmp)
        headers = _install_headers(source.tree, arch, work / "headers")
        out = entry / suite.name
        out.mkdir(parents=True)
        args = _suite_args(arch, out, headers)
        programs = _programs(suite, args, work)
        log.info("building %d %s selftests for %s", len(programs), suite.name, arch.name)
        _make(["-k", "-j2", "-C", str(suite), *args, "all"], "building the selftests")
    built = [p for p in programs if (out / p).is_file()]
    left_out = {p: _why_not(suite, args, out, p) for p in programs if p not in built}
    for junk in set(p.name for p in out.iterdir()) - set(built):
        path = out / junk
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    proc.run([f"{arch.cross_compile}strip", *(str(out / p) for p in built)],
             timeout=300, check=False, package="binutils")
    (entry / "kselftest").mkdir()
    shutil.copy2(suite.parent / RUNNER, entry / RUNNER)
    record = SelftestBuild(entry, arch.name, suite.name, source.identity, compiler,
                           tuple(built), left_out)
    atomicio.write_json(entry / RECORD, record.to_json())


def build(source: Source, arch: Arch) -> SelftestBuild:
    """The mm selftests of `source` for `arch`, from the cache when built before."""
    compiler = rootfs.compiler_version(arch)
    key = cache.digest(KIND, BUILD_VERSION, source.identity, arch.name, compiler)

    def make(tmp: Path) -> None:
        _build_into(source, arch, tmp, compiler)

    root = cache.entry(KIND, key, make, valid=lambda p: (p / RECORD).is_file())
    data = json.loads((root / RECORD).read_text())
    return SelftestBuild.from_json(root, data)
