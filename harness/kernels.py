"""Kernel images: Debian's packaged kernels, images given by path, and built recipes.

A KernelImage is what the rest of the harness boots. It knows its arch, where it came
from, and (when the kernel needs them) the modules the guest must load at boot.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import atomicio, cache, debian, kbuild, schema
from .arches import ARCHES, Arch
from .cpio import CpioWriter
from .errors import KernelError, UsageError
from .inputs import regular_file, shown
from .kversion import image_release

# Modules the guest needs from a modular kernel: the virtio NIC for SSH. Their
# dependencies are found from each module's own `depends=` record.
WANTED_MODULES = ("virtio_pci", "virtio_net")

# Debug features that exist in the kernel but stay off unless asked for at boot.
DEBUG_BOOT_OPTIONS = (
    ("PAGE_POISONING", "page_poison=1"),  # catches writes to free pages: the seed bug
)


@dataclass(frozen=True)
class KernelImage:
    path: Path
    arch: str
    description: str
    release: str | None = None
    config: Path | None = None
    modules_cpio: Path | None = None  # appended to the initramfs when present
    cmdline_extra: tuple[str, ...] = field(default=())
    source: dict[str, str] = field(default_factory=dict)
    vmlinux: Path | None = None  # the ELF with its symbols, to put file:line in reports

    def has_option(self, option: str) -> bool | None:
        """Whether CONFIG_<option> is y or m; None when the config is unknown."""
        if self.config is None or not self.config.is_file():
            return None
        name = option if option.startswith("CONFIG_") else f"CONFIG_{option}"
        pattern = re.compile(rf"^{re.escape(name)}=[ym]$", re.M)
        return bool(pattern.search(self.config.read_text(errors="replace")))

    def debug_cmdline(self) -> list[str]:
        """Boot options that switch on debug features this kernel was built with."""
        return [arg for option, arg in DEBUG_BOOT_OPTIONS if self.has_option(option)]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for key in ("path", "config", "modules_cpio", "vmlinux"):
            d[key] = str(d[key]) if d[key] is not None else None
        d["cmdline_extra"] = list(self.cmdline_extra)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelImage:
        """The image to_dict wrote (a lab night hands its resolved kernels to workers)."""
        def path(key: str) -> Path | None:
            return Path(data[key]) if data.get(key) else None

        return cls(path=Path(data["path"]), arch=str(data["arch"]),
                   description=str(data["description"]), release=data.get("release"),
                   config=path("config"), modules_cpio=path("modules_cpio"),
                   cmdline_extra=tuple(data.get("cmdline_extra") or ()),
                   source=dict(data.get("source") or {}), vmlinux=path("vmlinux"))


# --- recognising images -------------------------------------------------------------

def detect_arch(path: Path) -> str:
    """The arch of a kernel image from its header; KernelError if it is not one we boot."""
    head_size = max(0x240, *(_magic_end(a) for a in ARCHES.values()))
    try:
        with path.open("rb") as f:
            head = f.read(head_size)
    except OSError as e:
        raise KernelError(f"cannot read kernel image {path}: {e.strerror}") from e
    found = _arch_of_head(head, ARCHES.values())
    if found is not None:
        return found
    if head[:2] == b"\x1f\x8b":
        return _detect_gzipped(path)
    if head[:4] == b"\x7fELF":
        machine = int.from_bytes(head[18:20], "little")
        arch = next((a.name for a in ARCHES.values() if a.elf_machine == machine),
                    f"ELF machine {machine}")
        images = " or ".join(a.kernel_image for a in ARCHES.values())
        raise KernelError(
            f"{path} is an ELF vmlinux ({arch}); give the bootable image instead ({images})"
        )
    kinds = " or ".join(a.image_kind + (", optionally gzipped" if a.image_gzipped else "")
                        for a in ARCHES.values())
    raise KernelError(
        f"{path} is not a kernel image the harness can boot (expected {kinds})"
    )


def _magic_end(arch: Arch) -> int:
    offset, magic = arch.image_magic
    return offset + len(magic)


def _arch_of_head(head: bytes, arches: Iterable[Arch]) -> str | None:
    return next((a.name for a in arches if a.is_image_head(head)), None)


def _detect_gzipped(path: Path) -> str:
    """The arch of a gzipped image, for arches whose images come gzipped."""
    gzipped = [a for a in ARCHES.values() if a.image_gzipped]
    try:
        inner = _gunzip_head(path, max((_magic_end(a) for a in gzipped), default=0))
    except zlib.error as e:  # a truncated or damaged download, say
        raise KernelError(f"{path} starts like gzip data but does not decompress ({e}); "
                          "give an intact kernel image") from None
    found = _arch_of_head(inner, gzipped)
    if found is None:
        kinds = " or ".join(a.image_kind for a in gzipped)
        raise KernelError(f"{path} is gzip data but not a compressed kernel image ({kinds})")
    return found


def _gunzip_head(path: Path, size: int) -> bytes:
    d = zlib.decompressobj(wbits=31)
    with path.open("rb") as f:
        out = b""
        while len(out) < size:
            chunk = f.read(65536)
            if not chunk:
                break
            out += d.decompress(chunk, size - len(out))
    return out


def _lexists(path: Path) -> bool:
    """Whether anything (a dangling link too) is at `path`; False for a path the system
    cannot even look up (too long, a NUL byte)."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def image_from_path(path: Path, arch: Arch) -> KernelImage:
    if not _lexists(path):
        raise KernelError(f"kernel image {shown(path)} does not exist")
    given, path = path, regular_file(path, "--kernel", "give a bzImage or Image file")
    found = detect_arch(path)
    if found != arch.name:
        raise KernelError(
            f"kernel image {path} is for {found}, but the guest arch is {arch.name}; "
            f"pass --arch {found} or an {arch.name} kernel"
        )
    return KernelImage(path=path, arch=arch.name, description=str(given),
                       release=image_release(path), config=config_beside(given),
                       source={"kind": "path", "path": str(path)},
                       vmlinux=_beside(given, ("vmlinux",)))


def config_beside(image: Path) -> Path | None:
    """The .config of the build an image came from (see `_beside`)."""
    return _beside(image, (".config", "config"))


def _beside(image: Path, names: tuple[str, ...]) -> Path | None:
    """A file of the build an image came from: beside it (our cache entries keep
    `config` and `vmlinux` there), or at the top of the build directory, which is four
    levels up from arch/<arch>/boot/<image> (in a tree or a `make O=DIR` build)."""
    candidates = [image.parent / name for name in names]
    parents = image.resolve().parents
    if len(parents) > 3 and parents[0].name == "boot" and parents[2].name == "arch":
        candidates += [parents[3] / name for name in names]
    return next((c for c in candidates if c.is_file()), None)


# --- Debian kernels -----------------------------------------------------------------------


def debian_kernel_package(arch: Arch) -> tuple[str, str]:
    """(unsigned image package name, version) behind Debian's linux-image-<arch> metapackage."""
    meta = f"linux-image-{arch.debian_arch}"
    depends = debian.package_field(meta, arch.debian_arch, "Depends")
    match = re.search(r"(linux-image-[0-9][^\s,(]*)", depends)
    if match is None:
        raise KernelError(f"cannot find the kernel package in {meta}'s Depends: {depends}")
    name = match.group(1)
    if not name.endswith("-unsigned"):
        name += "-unsigned"
    return name, debian.package_version(name, arch.debian_arch)


def debian_kernel(arch: Arch) -> KernelImage:
    """Debian's packaged kernel for `arch`, downloaded once and cached."""
    package, version = debian_kernel_package(arch)
    key = cache.digest("debian-kernel", package, version, arch.debian_arch, WANTED_MODULES, 2)

    def build(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="oomrace-deb-") as tmp:
            deb = debian.download(package, arch.debian_arch, Path(tmp))
            root = Path(tmp) / "root"
            debian.extract(deb, root)
            vmlinuz = next(iter(sorted((root / "boot").glob("vmlinuz-*"))), None)
            if vmlinuz is None:
                raise KernelError(f"{deb.name} holds no boot/vmlinuz-*")
            release = vmlinuz.name.removeprefix("vmlinuz-")
            shutil.copy2(vmlinuz, out / "vmlinuz")
            shutil.copy2(root / "boot" / f"config-{release}", out / "config")
            moddir = root / "lib" / "modules" / release
            write_modules_cpio(moddir, WANTED_MODULES, out / "modules.cpio")
            meta = {"package": package, "version": version, "release": release}
            atomicio.write_json(out / "meta.json", schema.versioned(meta))

    out = cache.entry("kernels", key, build, _debian_entry_ok)
    meta = atomicio.read_json_object(out / "meta.json") or {}
    schema.check_version(meta, str(out / "meta.json"))
    image = out / "vmlinuz"
    found = detect_arch(image)
    if found != arch.name:
        raise KernelError(f"Debian package {package} unpacked to a {found} kernel")
    return KernelImage(
        path=image,
        arch=arch.name,
        description=f"debian {package} {version}",
        release=meta["release"],
        config=out / "config",
        modules_cpio=out / "modules.cpio",
        source={"kind": "debian", "package": package, "version": version},
    )


def _debian_entry_ok(entry: Path) -> bool:
    """A cached Debian kernel with a readable record (a corrupt one is rebuilt)."""
    meta = atomicio.read_json_object(entry / "meta.json")
    return meta is not None and isinstance(meta.get("release"), str) and (
        entry / "vmlinuz").is_file()


def _module_depends(ko: Path) -> list[str]:
    data = ko.read_bytes()
    match = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    if match is None or not match.group(1):
        return []
    return [d.decode() for d in match.group(1).split(b",") if d]


def module_load_order(moddir: Path, wanted: Iterable[str]) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, each after what it depends on.

    Modules built into the kernel have no .ko and are simply left out.
    """
    by_name: dict[str, Path] = {}
    for ko in moddir.rglob("*.ko"):
        by_name[ko.stem.replace("-", "_")] = ko
    for ko in moddir.rglob("*.ko.xz"):
        raise KernelError(f"compressed module {ko} is not supported; modules must be plain .ko")
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name not in by_name:
            return
        seen.add(name)
        for dep in _module_depends(by_name[name]):
            visit(dep)
        order.append(by_name[name])

    for name in wanted:
        visit(name)
    return order


def write_modules_cpio(moddir: Path, wanted: Iterable[str], out: Path) -> None:
    """A cpio holding the wanted modules under /lib/modules and their load order."""
    order = module_load_order(moddir, wanted)
    with CpioWriter(out) as cpio:
        cpio.directory("lib")
        cpio.directory("lib/modules")
        for ko in order:
            cpio.file(f"lib/modules/{ko.name}", ko.read_bytes(), 0o644)
        names = "".join(f"{ko.name}\n" for ko in order)
        cpio.file("lib/modules/load-order", names.encode(), 0o644)


# --- resolving what the user asked for ------------------------------------------------------


@dataclass(frozen=True)
class ResolvedKernel:
    """A --kernel resolved once for one arch (downloaded, found or built): what was asked
    for and the image that boots. Runs, lab nights and bisect steps pass this down
    instead of resolving the name again."""

    requested: str  # debian | a recipe name | a path, as given
    arch: Arch
    image: KernelImage

    @property
    def release(self) -> str | None:
        return self.image.release


def resolve_kernel(requested: str, arch: Arch,
                   kconfig: kbuild.KconfigChange | None = None) -> ResolvedKernel:
    return ResolvedKernel(requested, arch, resolve(requested, arch, kconfig))


def resolve(spec: str, arch: Arch, kconfig: kbuild.KconfigChange | None = None) -> KernelImage:
    """Turn --kernel (debian | a path | a recipe name) into a bootable image for `arch`;
    `kconfig` changes a recipe's config (--kconfig, --kconfig-add)."""
    if kconfig and spec not in kbuild.recipe_names():
        raise UsageError(f"--kconfig and --kconfig-add change the config of a recipe's "
                         f"build; --kernel {spec} is not a recipe (give a recipe name)")
    if spec == "debian":
        return debian_kernel(arch)
    path = Path(spec).expanduser()
    if "/" in spec or spec.startswith(".") or _lexists(path):
        return image_from_path(path, arch)
    recipes = kbuild.recipe_names()
    if spec in recipes:
        recipe = kbuild.with_kconfig(kbuild.load_recipe(spec), kconfig or kbuild.KconfigChange())
        return from_build(kbuild.build(recipe, arch.name))
    valid = ", ".join(["debian", *recipes])
    images = "/".join(a.image_name for a in ARCHES.values())
    raise UsageError(
        f"kernel {shown(spec)!r} is neither an existing file nor a known kernel; "
        f"valid names: {valid}, or a path to a {images}"
    )


def from_build(built: kbuild.BuiltKernel) -> KernelImage:
    """The bootable image of a kernel built from a recipe."""
    return KernelImage(
        path=built.image,
        arch=built.arch,
        description=f"recipe {built.recipe} ({built.source_identity})",
        release=built.kernel_version,
        config=built.config,
        cmdline_extra=tuple(built.cmdline),
        source={"kind": "recipe", "recipe": built.recipe, "identity": built.source_identity,
                "patches": ",".join(built.patches), "cache_key": built.cache_key},
        vmlinux=built.vmlinux,
    )
