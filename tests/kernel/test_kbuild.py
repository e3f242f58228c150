"""Really build kernels (minutes cold, seconds when cached): `pytest -m kernel_build`.

The first build of an arch compiles everything (ccache makes later cold builds of
other patch sets fast); the second call for the same inputs must be a cache hit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness import kbuild
from harness.errors import KernelError

pytestmark = [pytest.mark.kernel_build, pytest.mark.slow, pytest.mark.timeout(3600)]

ARCHES = ["aarch64", "x86_64"]


def _check(k: kbuild.BuiltKernel, recipe: str, arch: str) -> None:
    assert k.image.is_file() and k.image.stat().st_size > 1_000_000
    assert k.arch == arch and k.recipe == recipe
    assert k.build_log.is_file()
    wanted = kbuild.requested_options(kbuild.load_recipe(recipe).fragment_paths(arch))
    assert (
        kbuild.check_config(k.config.read_text(), kbuild.load_recipe(recipe).fragment_paths(arch))
        == []
    )
    for option in ("PAGE_POISONING", "MEMCG", "SMP", "VIRTIO_NET", "DEBUG_VM", "KALLSYMS"):
        assert k.has_option(option), option
    assert not k.has_option("PANIC_ON_OOPS")
    assert wanted  # the fragments were read
    if arch == "x86_64":
        assert k.has_option("64BIT") and k.has_option("SERIAL_8250_CONSOLE")
        assert k.image.read_bytes()[0x202:0x206] == b"HdrS"  # bzImage boot header
    else:
        assert k.has_option("SERIAL_AMBA_PL011_CONSOLE") and k.has_option("PCI_HOST_GENERIC")
        assert k.image.read_bytes()[0x38:0x3C] == b"ARMd"  # arm64 Image magic


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("recipe", ["v6.1", "v6.1-reaper-fullmm"])
def test_build_recipe(recipe: str, arch: str) -> None:
    k = kbuild.build(recipe, arch, progress=True)
    _check(k, recipe, arch)
    if recipe == "v6.1-reaper-fullmm":
        assert k.patches == ("0001-oom_reaper-gather-whole-mm-with-fullmm.patch",)
        assert "0001-oom_reaper" in k.build_log.read_text()
    again = kbuild.build(recipe, arch, progress=False)
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
    recipe = replace(kbuild.load_recipe("v6.1"), name="bad-patch", patches=(str(bad),))
    with pytest.raises(KernelError) as e:
        kbuild.build(recipe, "aarch64", progress=False)
    text = str(e.value)
    assert "0099-does-not-apply.patch" in text
    assert "Hunk #1 FAILED" in text
    assert "no_such_call" in text
    assert "build log:" in text
