"""Resolving --kernel: Debian's packaged kernels, images given by path, and built recipes.

`resolve` turns what the user asked for into a bootable KernelImage (kernel.image); for a
recipe it builds the kernel (kernel.build), so this is the one module of the wing that
joins booting and building.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .. import atomicio, cache, debian, schema
from ..arches import ARCHES, Arch
from ..cpio import CpioWriter
from ..errors import KernelError, UsageError
from .build import builder, recipes
from .image import (
    KernelImage,
    KernelSource,
    ResolvedKernel,
    SourceKind,
    detect_arch,
    image_from_path,
)

# Modules the guest needs from a modular kernel: the virtio NIC for SSH. Their
# dependencies are found from each module's own `depends=` record.
WANTED_MODULES = ("virtio_pci", "virtio_net")


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
        arch=arch,
        description=f"debian {package} {version}",
        release=meta["release"],
        config=out / "config",
        modules_cpio=out / "modules.cpio",
        source=KernelSource(SourceKind.DEBIAN, package=package, version=version),
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


def resolve_kernel(requested: str, arch: Arch,
                   kconfig: recipes.KconfigChange | None = None) -> ResolvedKernel:
    return ResolvedKernel(requested, arch, resolve(requested, arch, kconfig))


def resolve(spec: str, arch: Arch, kconfig: recipes.KconfigChange | None = None) -> KernelImage:
    """Turn --kernel (debian | a path | a recipe name) into a bootable image for `arch`;
    `kconfig` changes a recipe's config (--kconfig, --kconfig-add)."""
    if kconfig and spec not in recipes.recipe_names():
        raise UsageError(f"--kconfig and --kconfig-add change the config of a recipe's "
                         f"build; --kernel {spec} is not a recipe (give a recipe name)")
    if spec == "debian":
        return debian_kernel(arch)
    path = Path(spec).expanduser()
    if path.exists() or "/" in spec or spec.startswith("."):
        return image_from_path(path, arch)
    names = recipes.recipe_names()
    if spec in names:
        recipe = recipes.with_kconfig(recipes.load_recipe(spec),
                                      kconfig or recipes.KconfigChange())
        return from_build(builder.build(recipe, arch.name))
    valid = ", ".join(["debian", *names])
    images = "/".join(a.image_name for a in ARCHES.values())
    raise UsageError(
        f"kernel {spec!r} is neither an existing file nor a known kernel; "
        f"valid names: {valid}, or a path to a {images}"
    )


def from_build(built: builder.BuiltKernel) -> KernelImage:
    """The bootable image of a kernel built from a recipe."""
    return KernelImage(
        path=built.image,
        arch=built.arch,
        description=f"recipe {built.recipe} ({built.source_identity})",
        release=built.kernel_version,
        config=built.config,
        cmdline_extra=tuple(built.cmdline),
        source=KernelSource(SourceKind.RECIPE, recipe=built.recipe,
                            identity=built.source_identity, patches=built.patches,
                            cache_key=built.cache_key),
        vmlinux=built.vmlinux,
    )
