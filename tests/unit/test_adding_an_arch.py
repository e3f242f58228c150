"""Adding an arch is one entry in arches.ARCHES (plus its kernels/fragments/virt-<ARCH>.config):
a fake riscv64, registered only there, is accepted, listed, booted, built, recognised in
images and in console logs without any other module knowing it."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.arches import ARCHES, Arch, GuestSpec, arch_help, get_arch, parse_arch_list, qemu_argv
from harness.errors import KernelError, UsageError
from harness.kernel.build import builder, recipes, tuxmake
from harness.kernel.build.source import Source
from harness.kernel.image import detect_arch, image_from_path
from harness.kernel_log import parse

RISCV64 = Arch(
    name="riscv64",
    qemu_binary="qemu-system-riscv64",
    qemu_package="qemu-system-misc",
    machine="virt",
    cpu="rv64",
    console="ttyS0",
    net_device="virtio-net-pci",
    host_machines=("riscv64",),
    debian_arch="riscv64",
    c_compiler="riscv64-linux-gnu-gcc",
    c_compiler_package="gcc-riscv64-linux-gnu",
    kernel_arch="riscv",
    cross_compile="riscv64-linux-gnu-",
    kernel_image="arch/riscv/boot/Image",
    image_magic=(0x30, b"RISCV\x00\x00\x00"),
    image_kind="a riscv Image",
    image_gzipped=True,
    elf_machine=243,
    log_line_starts=("epc : ", "ra : ", "status: "),
    log_line_contains=("Hardware name: riscv-virtio",),
)

RISCV_LOG = """\
[   41.123456] pagealloc: memory corruption
[   41.123500] 00000000b1c0e2a8: 00 00 01 00 2a 00 00 00 6b 6b 6b 6b 6b 6b 6b 6b  ........kkkkkkkk
[   41.123600] CPU: 1 PID: 212 Comm: oomrace-stress Not tainted 6.1.0 #1
[   41.123700] Hardware name: riscv-virtio,qemu (DT)
[   41.123800] Call Trace:
[   41.123900] [<ffffffff80005ba4>] dump_backtrace+0x1c/0x24
[   41.124000] [<ffffffff8078b7c6>] show_stack+0x2c/0x38
[   41.124100] [<ffffffff8016a2f0>] get_page_from_freelist+0x8d4/0x1000
"""


@pytest.fixture
def riscv64(monkeypatch: pytest.MonkeyPatch) -> Iterator[Arch]:
    monkeypatch.setitem(ARCHES, RISCV64.name, RISCV64)
    yield RISCV64


def image_for(arch: Arch, path: Path, compress: bool = False) -> Path:
    """A file whose header carries `arch`'s image magic (gzipped if asked)."""
    offset, magic = arch.image_magic
    header = bytes(offset) + magic
    path.write_bytes(gzip.compress(header) if compress else header)
    return path


def test_validation_and_help_list_it(riscv64: Arch) -> None:
    assert get_arch("riscv64") is riscv64
    assert [a.name for a in parse_arch_list(["all"])] == ["x86_64", "aarch64", "riscv64"]
    assert parse_arch_list(["riscv64,x86_64"]) == [riscv64, get_arch("x86_64")]
    assert arch_help() == "x86_64, aarch64, riscv64 or all"
    assert arch_help(with_all=False) == "x86_64, aarch64 or riscv64"


def test_without_the_entry_it_is_unknown() -> None:
    with pytest.raises(UsageError, match="unknown arch 'riscv64'"):
        get_arch("riscv64")
    assert "riscv64" not in arch_help()


def test_qemu_argv(riscv64: Arch, tmp_path: Path) -> None:
    spec = GuestSpec(kernel=tmp_path / "Image", initrd=tmp_path / "i", cmdline="x",
                     console_log=tmp_path / "c.log", ssh_port=2222)
    argv = qemu_argv(riscv64, spec)
    assert argv[0] == "qemu-system-riscv64"
    assert argv[argv.index("-M") + 1] == "virt"
    assert argv[argv.index("-cpu") + 1] == "rv64"
    assert "virtio-net-pci,netdev=net0" in argv


def test_kernel_build_make_arguments(riscv64: Arch, tmp_path: Path) -> None:
    recipe = recipes.load_recipe("v6.1")
    fragments = recipe.fragment_paths("riscv64")
    assert recipes.FRAGMENTS_DIR / "virt-riscv.config" in fragments  # the one file to add
    source = Source(tree=tmp_path, identity="tree:x", kind="tree", version="6.1.0", timestamp=0)
    job = tuxmake.BuildJob(recipe, riscv64, source, tuple(fragments), (), "gcc", "key",
                                  tux=("tuxmake",))
    argv = tuxmake.tuxmake_argv(job, tmp_path, tmp_path / "build", tmp_path / "o", "kernel")
    assert "--target-arch=riscv" in argv  # tuxmake's ARCH=
    assert "--kernel-image=Image" in argv
    assert argv[-2:] == ["CROSS_COMPILE=riscv64-linux-gnu-", "kernel"]
    assert riscv64.kernel_compiler_package() == "gcc-riscv64-linux-gnu"


def test_a_build_asks_for_its_fragment(riscv64: Arch) -> None:
    with pytest.raises(UsageError, match=r"virt-riscv\.config does not exist"):
        builder.build("v6.1", "riscv64", progress=False)


def test_every_arch_has_the_fragments_of_every_recipe() -> None:
    for name in recipes.recipe_names():
        for arch in ARCHES:
            missing = [p for p in recipes.load_recipe(name).fragment_paths(arch) if not p.is_file()]
            assert missing == [], (name, arch)


def test_image_detection(riscv64: Arch, tmp_path: Path) -> None:
    assert detect_arch(image_for(riscv64, tmp_path / "Image")) == "riscv64"
    assert detect_arch(image_for(riscv64, tmp_path / "vmlinuz", compress=True)) == "riscv64"
    image = image_from_path(image_for(riscv64, tmp_path / "Image"), riscv64)
    assert image.arch is riscv64
    elf = bytearray(0x400)
    elf[:4] = b"\x7fELF"
    elf[18:20] = (243).to_bytes(2, "little")
    (tmp_path / "vmlinux").write_bytes(bytes(elf))
    with pytest.raises(KernelError, match=r"ELF vmlinux \(riscv64\).*arch/riscv/boot/Image"):
        detect_arch(tmp_path / "vmlinux")
    (tmp_path / "junk").write_bytes(b"junk" * 200)
    with pytest.raises(KernelError, match="a riscv Image, optionally gzipped"):
        detect_arch(tmp_path / "junk")


def test_log_arch_guess(riscv64: Arch) -> None:
    reports = parse(RISCV_LOG).reports
    assert len(reports) == 1 and reports[0].arch == "riscv64"
