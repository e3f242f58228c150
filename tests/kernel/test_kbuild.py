"""Really build kernels (minutes cold, seconds when cached): `pytest -m kernel_build`.

The first build of an arch compiles everything (ccache makes later cold builds of
other patch sets fast); the second call for the same inputs must be a cache hit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import KernelError
from harness.kernel import kconfig
from harness.kernel.build import builder, recipes
from harness.kernel.build.source import resolve_source

pytestmark = [pytest.mark.kernel_build, pytest.mark.slow, pytest.mark.timeout(3600)]

ARCHES = ["aarch64", "x86_64"]


def _check(k: builder.BuiltKernel, recipe: str, arch: str) -> None:
    assert k.image.is_file() and k.image.stat().st_size > 1_000_000
    assert k.arch.name == arch and k.recipe == recipe
    assert k.build_log.is_file()
    r = recipes.load_recipe(recipe)
    wanted = kconfig.requested_options(r.fragment_paths(arch))
    mismatches = kconfig.check_config(k.config.read_text(), r.fragment_paths(arch))
    if mismatches:  # only options this kernel version does not have at all
        known = kconfig.kconfig_symbols(resolve_source(r.source, r.sha256).tree)
        assert [m for m in mismatches if m.option.removeprefix("CONFIG_") in known] == []
    for option in ("PAGE_POISONING", "MEMCG", "SMP", "VIRTIO_NET", "DEBUG_VM", "KALLSYMS"):
        assert k.has_option(option), option
    assert not k.has_option("PANIC_ON_OOPS")
    # The vmlinux is kept beside the image, for symbolize; line info where the recipe
    # asks for it (debug-info.config), none where it does not (a cold build's time).
    assert k.vmlinux is not None and k.vmlinux.parent == k.image.parent
    assert k.has_option("DEBUG_INFO") == ("debug-info.config" in k.fragments)
    assert wanted  # the fragments were read
    if arch == "x86_64":
        assert k.has_option("64BIT") and k.has_option("SERIAL_8250_CONSOLE")
        # Reliable stacks: the frame-pointer unwinder, under its 6.1 or its 4.14 name.
        assert k.has_option("UNWINDER_FRAME_POINTER") or k.has_option("FRAME_POINTER_UNWINDER")
        assert k.image.read_bytes()[0x202:0x206] == b"HdrS"  # bzImage boot header
    else:
        assert k.has_option("SERIAL_AMBA_PL011_CONSOLE") and k.has_option("PCI_HOST_GENERIC")
        assert k.image.read_bytes()[0x38:0x3C] == b"ARMd"  # arm64 Image magic


@pytest.mark.parametrize(("recipe", "arch"), [
    ("v6.1", "aarch64"), ("v6.1-reaper-fullmm", "aarch64"),
    # 4.14.2: toolchain compat fixes, a tarball source, options the tree lacks.
    ("v4.14.2", "aarch64"), ("v4.14.2", "x86_64"),
    # CI builds no x86_64 6.1: the full tier does.
    pytest.param("v6.1", "x86_64", marks=pytest.mark.full),
    pytest.param("v6.1-reaper-fullmm", "x86_64", marks=pytest.mark.full),
])
def test_build_recipe(recipe: str, arch: str) -> None:
    k = builder.build(recipe, arch, progress=True)
    _check(k, recipe, arch)
    if recipe == "v6.1-reaper-fullmm":
        assert k.patches == ("0001-oom_reaper-gather-whole-mm-with-fullmm.patch",)
        assert "0001-oom_reaper" in k.build_log.read_text()
    # Every make gets ARCH and CROSS_COMPILE on its command line, which beats a value a
    # tree hard-codes in its top Makefile.
    makes = [line for line in k.build_log.read_text().splitlines()
             if line.startswith("make ") and " O=" in line]
    assert makes and all(" ARCH=" in m and " CROSS_COMPILE=" in m for m in makes)
    if recipe == "v4.14.2":
        assert k.kernel_version == "4.14.2"
        assert k.compat == ("dtc-extern-yylloc.patch",)
        assert "compat fix dtc-extern-yylloc.patch" in k.build_log.read_text()
    again = builder.build(recipe, arch, progress=False)
    assert again.cached and again.image == k.image


def test_bad_patch_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "0099-does-not-apply.patch"
    bad.write_text(
        "From: oomrace <oomrace@localhost>\nSubject: [PATCH] broken on purpose\n\n---\n"
        "diff --git a/mm/oom_kill.c b/mm/oom_kill.c\n"
        "--- a/mm/oom_kill.c\n+++ b/mm/oom_kill.c\n"
        "@@ -10,3 +10,3 @@\n context that is not there\n-\tno_such_call(&tlb);\n"
        "+\tanother_call(&tlb);\n more missing context\n"
    )
    recipe = replace(recipes.load_recipe("v6.1"), name="bad-patch", patches=(str(bad),))
    with pytest.raises(KernelError) as e:
        builder.build(recipe, "aarch64", progress=False)
    text = str(e.value)
    assert "0099-does-not-apply.patch" in text
    assert "Hunk #1 FAILED" in text
    assert "no_such_call" in text
    assert "build log:" in text
