"""The guest initramfs: busybox, dropbear and its libraries from Debian, the project's init
and its guest programs compiled statically. Built once per arch and cached by content."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import cache, debian, proc
from .arches import Arch
from .cpio import CpioWriter
from .errors import RootfsError
from .paths import project_dir
from .tools import BUSYBOX_PACKAGE, DROPBEAR_PACKAGE, Tool, arch_tools, require

# dropbear-bin and the libraries it links against (checked after unpacking).
DROPBEAR_CLOSURE = (
    DROPBEAR_PACKAGE, "libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "zlib1g", "libgmp10",
)
# Parts of those packages a guest never needs; keeps the initramfs small.
SKIPPED = re.compile(r"^(usr/share/|usr/lib/[^/]+/gconv/|usr/lib/[^/]+/audit/|etc/|var/)")
GUEST_DIRS = ("bin", "sbin", "dev", "proc", "sys", "tmp", "root", "etc", "run", "mnt", "lib",
              "usr", "usr/bin", "usr/sbin", "var")
BUILD_RECIPE_VERSION = 3  # bump when the layout below changes


@dataclass(frozen=True)
class Initramfs:
    path: Path
    arch: str
    key: str
    packages: dict[str, str]


def _packages(arch: Arch) -> dict[str, str]:
    names = (BUSYBOX_PACKAGE, *DROPBEAR_CLOSURE)
    return {name: debian.package_version(name, arch.debian_arch) for name in names}


def compiler_version(arch: Arch) -> str:
    tool = next(t for t in arch_tools(arch) if t.program == arch.c_compiler)
    require(tool)
    out = proc.run([arch.c_compiler, "--version"], timeout=60, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _inputs_digest(arch: Arch, packages: dict[str, str]) -> str:
    root = project_dir("rootfs")
    files = sorted(p for p in root.rglob("*") if p.is_file() and "build" not in p.parts)
    contents = [(str(p.relative_to(root)), cache.file_digest(p)) for p in files]
    return cache.digest("initramfs", BUILD_RECIPE_VERSION, arch.name, packages, contents,
                        compiler_version(arch))


def build_guest_programs(arch: Arch, out: Path) -> list[Path]:
    """Compile every guest program statically for `arch` into `out`."""
    require(Tool("make", "make", "building guest programs"))
    src = project_dir("rootfs") / "guest"
    out.mkdir(parents=True, exist_ok=True)
    # OUT relative to the sources: a space in the project's path never reaches make.
    done = proc.run(
        ["make", "-C", str(src), f"CC={arch.c_compiler}", f"OUT={os.path.relpath(out, src)}"],
        timeout=600, check=False,
    )
    if done.returncode != 0:
        raise RootfsError(
            f"building the guest programs for {arch.name} failed:\n{done.output[-3000:]}"
        )
    return _expected_programs(src, out, arch)


def _expected_programs(src: Path, out: Path, arch: Arch) -> list[Path]:
    """One executable per *.c, or RootfsError: an initramfs without them must never be
    cached under the key of a good one."""
    programs = [out / source.stem for source in sorted(src.glob("*.c"))]
    missing = [p.name for p in programs if not (p.is_file() and os.access(p, os.X_OK))]
    if missing or not programs:
        raise RootfsError(f"building the guest programs for {arch.name} did not produce "
                          f"{', '.join(missing) or 'any program'} in {out}; run `make -C "
                          f"{src} OUT=/tmp/guest` to see why")
    return programs


def _add_tree(cpio: CpioWriter, root: Path, seen: set[str]) -> None:
    """Add an unpacked package tree: directories, files and symlinks, minus SKIPPED parts."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            rel = str(rel_dir / name) if str(rel_dir) != "." else name
            if SKIPPED.match(rel + ("/" if path.is_dir() and not path.is_symlink() else "")):
                continue
            if rel in seen:
                continue
            seen.add(rel)
            if path.is_symlink():
                cpio.symlink(rel, os.readlink(path))
            elif path.is_dir():
                cpio.directory(rel)
            else:
                cpio.file(rel, path.read_bytes(), path.stat().st_mode & 0o777)


def _needed_libraries(binary: Path) -> list[str]:
    out = proc.run(["readelf", "-d", str(binary)], timeout=60, check=False, package="binutils")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)


def _check_libraries(unpacked: Path, binary: Path) -> None:
    present = {p.name for p in unpacked.rglob("*.so*")}
    missing = [lib for lib in _needed_libraries(binary) if lib not in present]
    if missing:
        raise RootfsError(f"{binary.name} needs {', '.join(missing)}, which no package supplied")


def build(arch: Arch) -> Initramfs:
    """The initramfs for `arch`, from the cache when its inputs are unchanged."""
    packages = _packages(arch)
    key = _inputs_digest(arch, packages)

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="oomrace-rootfs-") as tmp:
            work = Path(tmp)
            unpacked = work / "root"
            for name in packages:
                deb = debian.download(name, arch.debian_arch, work / "debs")
                debian.extract(deb, unpacked)
            dropbear = unpacked / "usr" / "sbin" / "dropbear"
            if not dropbear.is_file():
                raise RootfsError(f"{DROPBEAR_PACKAGE}:{arch.debian_arch} has no usr/sbin/dropbear")
            _check_libraries(unpacked, dropbear)
            programs = build_guest_programs(arch, work / "guest")
            _write_cpio(out / "initramfs.cpio", unpacked, programs)

    entry = cache.entry("initramfs", key, make)
    return Initramfs(path=entry / "initramfs.cpio", arch=arch.name, key=key, packages=packages)


def _write_cpio(target: Path, unpacked: Path, programs: list[Path]) -> None:
    root = project_dir("rootfs")
    with CpioWriter(target) as cpio:
        seen: set[str] = set()
        for d in GUEST_DIRS:
            cpio.directory(d)
            seen.add(d)
        # The kernel opens /dev/console for init before devtmpfs is mounted.
        cpio.char_device("dev/console", 5, 1)
        cpio.char_device("dev/null", 1, 3, 0o666)
        cpio.file("init", (root / "init").read_bytes(), 0o755)
        for etc in sorted((root / "etc").iterdir()):
            cpio.file(f"etc/{etc.name}", etc.read_bytes(), 0o644)
        seen.update({"dev/console", "dev/null", "init"})
        _add_tree(cpio, unpacked, seen)
        for program in programs:
            cpio.file(f"bin/{program.name}", program.read_bytes(), 0o755)


def initrd_for(initramfs: Initramfs, modules_cpio: Path | None, workdir: Path,
               extra: tuple[Path, ...] = ()) -> Path:
    """The initramfs plus a kernel's modules and `extra` archives (a user's reproducer), as
    one file QEMU can load (cpio archives concatenate)."""
    parts = [p for p in (modules_cpio, *extra) if p is not None]
    if not parts:
        return initramfs.path
    key = cache.digest(initramfs.key, *(cache.file_digest(p) for p in parts))
    combined = workdir / f"initrd-{key}.cpio"
    if not combined.exists():
        tmp = combined.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for part in (initramfs.path, *parts):
                out.write(part.read_bytes())
        tmp.rename(combined)
    return combined
