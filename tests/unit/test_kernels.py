import gzip
from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.cpio import CpioWriter
from harness.errors import KernelError, UsageError
from harness.kernel.image import (
    KernelImage,
    KernelSource,
    SourceKind,
    detect_arch,
    image_from_path,
    option,
)
from harness.kernel.resolve import module_load_order, resolve


def bzimage(path: Path) -> Path:
    data = bytearray(0x400)
    data[0x202:0x206] = b"HdrS"
    path.write_bytes(bytes(data))
    return path


def arm64_image(path: Path, compress: bool = False) -> Path:
    data = bytearray(0x400)
    data[0x38:0x3C] = b"ARM\x64"
    path.write_bytes(gzip.compress(bytes(data)) if compress else bytes(data))
    return path


def test_detects_both_arches(tmp_path: Path) -> None:
    assert detect_arch(bzimage(tmp_path / "bz")) == "x86_64"
    assert detect_arch(arm64_image(tmp_path / "Image")) == "aarch64"
    assert detect_arch(arm64_image(tmp_path / "vmlinuz", compress=True)) == "aarch64"


def test_not_a_kernel(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world" * 100)
    with pytest.raises(KernelError, match="not a kernel image"):
        detect_arch(junk)


def test_elf_vmlinux_is_refused_with_advice(tmp_path: Path) -> None:
    elf = bytearray(0x400)
    elf[:4] = b"\x7fELF"
    elf[18:20] = (183).to_bytes(2, "little")
    (tmp_path / "vmlinux").write_bytes(bytes(elf))
    with pytest.raises(KernelError, match="arch/arm64/boot/Image"):
        detect_arch(tmp_path / "vmlinux")


def test_wrong_arch_refused_before_qemu(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="is for aarch64, but the guest arch is x86_64"):
        image_from_path(arm64_image(tmp_path / "Image"), get_arch("x86_64"))


def test_missing_kernel_path(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="does not exist"):
        resolve(str(tmp_path / "nope" / "bzImage"), get_arch("x86_64"))


def test_unknown_kernel_name_lists_choices() -> None:
    with pytest.raises(UsageError, match="debian"):
        resolve("no-such-kernel-name", get_arch("x86_64"))


def _module(path: Path, depends: str) -> None:
    path.write_bytes(b"\x7fELF junk\x00license=GPL\x00depends=" + depends.encode() + b"\x00x")


def test_module_order_follows_depends(tmp_path: Path) -> None:
    _module(tmp_path / "virtio_net.ko", "virtio_ring,virtio,net_failover")
    _module(tmp_path / "net_failover.ko", "failover")
    _module(tmp_path / "failover.ko", "")
    _module(tmp_path / "virtio.ko", "")
    _module(tmp_path / "virtio_ring.ko", "virtio")
    names = [p.stem for p in module_load_order(tmp_path, ["virtio_net", "builtin_thing"])]
    assert names.index("virtio") < names.index("virtio_ring") < names.index("virtio_net")
    assert names.index("failover") < names.index("net_failover") < names.index("virtio_net")
    assert len(names) == 5


def test_cpio_is_readable_by_cpio_tool(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("cpio") is None:
        pytest.fail("the cpio tool is needed for this test: apt-get install cpio")
    archive = tmp_path / "a.cpio"
    with CpioWriter(archive) as c:
        c.directory("bin")
        c.file("bin/x", b"#!/bin/sh\necho hi\n", 0o755)
        c.symlink("bin/y", "x")
        c.char_device("console", 5, 1)
    listing = subprocess.run(["cpio", "-itv"], stdin=archive.open("rb"), capture_output=True,
                             text=True, check=True).stdout
    assert "bin/x" in listing and "bin/y -> x" in listing and "5,   1" in listing


def test_image_by_path_finds_its_version_and_the_config_of_an_o_build(tmp_path: Path) -> None:
    build = tmp_path / "out"  # make O=out: the image is four levels below the .config
    boot = build / "arch" / "arm64" / "boot"
    boot.mkdir(parents=True)
    image = arm64_image(boot / "Image")
    with image.open("ab") as f:
        f.write(b"Linux version 4.14.2 (oomrace@oomrace) #1 SMP\0")
    (build / ".config").write_text("CONFIG_PAGE_POISONING=y\n")
    kernel = image_from_path(image, get_arch("aarch64"))
    assert kernel.release == "4.14.2"
    assert kernel.config == build / ".config"
    assert kernel.debug_cmdline() == ["page_poison=1"]
    (boot / "config").write_text("CONFIG_PAGE_POISONING=y\n")  # a cache entry's: beside it
    assert image_from_path(image, get_arch("aarch64")).config == boot / "config"


# The source records results and lab plans have always held, one per kind (and one from a
# record that did not say its kind): read back typed, written again byte for byte.
OLD_SOURCES = [
    {"kind": "path", "path": "/k/Image"},
    {"kind": "debian", "package": "linux-image-6.1.0-28-arm64-unsigned", "version": "6.1.119-1"},
    {"kind": "recipe", "recipe": "v6.1-reaper-fullmm", "identity": "debian:linux-source-6.1",
     "patches": "0001-a.patch,0002-b.patch", "cache_key": "a6037f2060fa02757719"},
    {"kind": "recipe", "recipe": "v6.1", "identity": "git:abc", "patches": "",
     "cache_key": "k"},
    {"identity": "tarball:d30468"},
]


@pytest.mark.parametrize("record", OLD_SOURCES)
def test_kernel_source_reads_and_writes_the_old_json(record: dict[str, str]) -> None:
    source = KernelSource.from_dict(record)
    assert source.to_dict() == record
    assert list(source.to_dict()) == list(record)  # the same key order


def test_kernel_source_is_typed() -> None:
    recipe = KernelSource.from_dict(OLD_SOURCES[2])
    assert recipe.kind is SourceKind.RECIPE
    assert recipe.patches == ("0001-a.patch", "0002-b.patch")
    assert recipe.source_identity == "debian:linux-source-6.1"
    debian = KernelSource.from_dict(OLD_SOURCES[1])
    assert debian.kind is SourceKind.DEBIAN and debian.source_identity == "6.1.119-1"
    assert KernelSource.from_dict(OLD_SOURCES[3]).patches == ()
    assert KernelSource.from_dict({}) == KernelSource()
    assert KernelSource.from_dict({"kind": "floppy"}).kind is None  # not a kind we know


def test_an_old_lab_plan_image_reads_back(tmp_path: Path) -> None:
    old = {"path": "/k/Image", "arch": "aarch64", "description": "recipe v6.1 (git:abc)",
           "release": "6.1.0", "config": "/k/config", "modules_cpio": None,
           "cmdline_extra": ["a=1"], "source": OLD_SOURCES[3], "vmlinux": None}
    image = KernelImage.from_dict(old)
    assert image.arch is get_arch("aarch64") and image.source.recipe == "v6.1"
    assert image.to_dict() == old


def test_one_option_helper(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text('CONFIG_A=y\nCONFIG_M=m\n# CONFIG_B is not set\nCONFIG_N=n\n'
                      'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"\n'
                      'CONFIG_CMDLINE="say \\"hi\\" \\\\o/"\nCONFIG_NR=8\n')
    assert option(config, "A") == "y" and option(config, "CONFIG_M") == "m"
    assert option(config, "B") is None and option(config, "N") is None
    assert option(config, "NOPE") is None and option(None, "A") is None
    assert option(tmp_path / "missing", "A") is None
    assert option(config, "CC_VERSION_TEXT") == '"gcc (Debian 12.2.0-14) 12.2.0"'
    assert option(config, "CC_VERSION_TEXT", unquote=True) == "gcc (Debian 12.2.0-14) 12.2.0"
    assert option(config, "CMDLINE", unquote=True) == 'say "hi" \\o/'
    assert option(config, "NR", unquote=True) == "8"
    # A KernelImage's question is y or m; None while its config is unknown.
    image = KernelImage(tmp_path / "Image", get_arch("aarch64"), "k", config=config)
    assert image.has_option("A") and image.has_option("M")
    assert image.has_option("NR") is False and image.has_option("B") is False
    assert KernelImage(tmp_path / "Image", get_arch("aarch64"), "k").has_option("A") is None
