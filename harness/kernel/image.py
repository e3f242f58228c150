"""Kernel images: what the rest of the harness boots, and recognising one from its header.

A KernelImage knows its arch, where it came from (a KernelSource), its .config and
(when the kernel needs them) the modules the guest must load at boot. This module imports
nothing of the build package: booting a guest does not bring the compiler stack along.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..arches import ARCHES, Arch, get_arch
from ..errors import KernelError
from .kconfig import parse_kconfig
from .version import image_release

# Debug features that exist in the kernel but stay off unless asked for at boot.
DEBUG_BOOT_OPTIONS = (
    ("PAGE_POISONING", "page_poison=1"),  # catches writes to free pages: the seed bug
)


def option(config: Path | None, name: str, *, unquote: bool = False) -> str | None:
    """The value of CONFIG_<name> (the prefix optional) in the .config at `config`: "y",
    "m", a number or a string; None when it is not set, or there is no config to read.
    With `unquote`, a string option's text without its quotes and escapes."""
    if config is None or not config.is_file():
        return None
    key = name if name.startswith("CONFIG_") else f"CONFIG_{name}"
    value = parse_kconfig(config.read_text(errors="replace")).get(key)
    if value is None or value == "n":
        return None
    if unquote and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


class SourceKind(enum.StrEnum):
    DEBIAN = "debian"  # Debian's packaged kernel
    PATH = "path"  # an image given by path
    RECIPE = "recipe"  # built from a recipe


@dataclass(frozen=True)
class KernelSource:
    """Where a kernel image came from. Each kind fills its own fields; the JSON form (a
    flat object of strings, patches joined with ",") is the one results have always held."""

    kind: SourceKind | None = None  # None: a record that did not say
    path: str | None = None  # PATH: the image
    package: str | None = None  # DEBIAN: the package and its version
    version: str | None = None
    recipe: str | None = None  # RECIPE: the recipe, its source identity, patches, cache key
    identity: str | None = None
    patches: tuple[str, ...] | None = None
    cache_key: str | None = None

    @property
    def source_identity(self) -> str | None:
        """What identifies the kernel's source: a build's source identity, a package's
        version."""
        return self.identity or self.version

    def to_dict(self) -> dict[str, str]:
        d: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                d[f.name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> KernelSource:
        data = data or {}

        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        kind = text("kind")
        patches = text("patches")
        return cls(kind=SourceKind(kind) if kind in tuple(SourceKind) else None,
                   path=text("path"), package=text("package"), version=text("version"),
                   recipe=text("recipe"), identity=text("identity"),
                   patches=None if patches is None else tuple(p for p in patches.split(",")
                                                              if p),
                   cache_key=text("cache_key"))


@dataclass(frozen=True)
class KernelImage:
    path: Path
    arch: Arch
    description: str
    release: str | None = None
    config: Path | None = None
    modules_cpio: Path | None = None  # appended to the initramfs when present
    cmdline_extra: tuple[str, ...] = field(default=())
    source: KernelSource = field(default_factory=KernelSource)
    vmlinux: Path | None = None  # the ELF with its symbols, to put file:line in reports

    def has_option(self, name: str) -> bool | None:
        """Whether CONFIG_<name> is y or m; None when the config is unknown."""
        if self.config is None or not self.config.is_file():
            return None
        return option(self.config, name) in ("y", "m")

    def debug_cmdline(self) -> list[str]:
        """Boot options that switch on debug features this kernel was built with."""
        return [arg for name, arg in DEBUG_BOOT_OPTIONS if self.has_option(name)]

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            d[f.name] = str(value) if isinstance(value, Path) else value
        d["arch"] = self.arch.name
        d["cmdline_extra"] = list(self.cmdline_extra)
        d["source"] = self.source.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelImage:
        """The image to_dict wrote (a lab night hands its resolved kernels to workers)."""
        def path(key: str) -> Path | None:
            return Path(data[key]) if data.get(key) else None

        return cls(path=Path(data["path"]), arch=get_arch(str(data["arch"])),
                   description=str(data["description"]), release=data.get("release"),
                   config=path("config"), modules_cpio=path("modules_cpio"),
                   cmdline_extra=tuple(data.get("cmdline_extra") or ()),
                   source=KernelSource.from_dict(data.get("source")),
                   vmlinux=path("vmlinux"))


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


def image_from_path(path: Path, arch: Arch) -> KernelImage:
    if not path.exists():
        raise KernelError(f"kernel image {path} does not exist")
    if not path.is_file():
        raise KernelError(f"kernel image {path} is not a file")
    found = detect_arch(path)
    if found != arch.name:
        raise KernelError(
            f"kernel image {path} is for {found}, but the guest arch is {arch.name}; "
            f"pass --arch {found} or an {arch.name} kernel"
        )
    return KernelImage(path=path.resolve(), arch=arch, description=str(path),
                       release=image_release(path), config=config_beside(path),
                       source=KernelSource(SourceKind.PATH, path=str(path.resolve())),
                       vmlinux=_beside(path, ("vmlinux",)))


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
