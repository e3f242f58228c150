"""kbuild without compiling: recipes, config checking, patching, cache keys, sources."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import cli
from harness.arches import get_arch
from harness.errors import KernelError, UsageError
from harness.kernel import kconfig
from harness.kernel.build import builder, progress, recipes
from harness.kernel.build.source import makefile_version, resolve_source
from harness.kernel.build.tree import apply_patch, link_tree, patched_paths

# --- recipes -------------------------------------------------------------------------


def test_shipped_recipes_load() -> None:
    names = recipes.recipe_names()
    assert names[:4] == [
        "v6.1",
        "v6.1-reaper-fullmm",
        "v6.1-reaper-fullmm+mm-users-fix",
        "v6.1-reaper-fullmm+lazy-flag-fix",
    ]
    base = recipes.load_recipe("v6.1")
    assert base.source == "debian:linux-source-6.1"
    assert base.base_config == "tinyconfig"
    assert base.patches == ()
    assert "page_poison=1" in base.cmdline
    bug = recipes.load_recipe("v6.1-reaper-fullmm")
    assert bug.fragments == base.fragments  # inherited through `extends`
    assert bug.patches == ("0001-oom_reaper-gather-whole-mm-with-fullmm.patch",)
    for name in names:
        recipe = recipes.load_recipe(name)
        for arch in ("x86_64", "aarch64"):
            for path in [*recipe.fragment_paths(arch), *recipe.patch_paths()]:
                assert path.is_file(), f"{name}: {path}"


def test_arch_placeholder_picks_the_fragment() -> None:
    recipe = recipes.load_recipe("v6.1")
    assert recipe.fragment_paths("aarch64")[0].name == "virt-arm64.config"
    assert recipe.fragment_paths("arm64")[0].name == "virt-arm64.config"
    assert recipe.fragment_paths("x86_64")[0].name == "virt-x86_64.config"


def test_unknown_recipe_lists_valid_names() -> None:
    with pytest.raises(UsageError) as e:
        recipes.load_recipe("v9.9")
    assert "v9.9" in str(e.value)
    assert "v6.1-reaper-fullmm" in str(e.value)


def test_recipe_file_errors(tmp_path: Path) -> None:
    toml = tmp_path / "k.toml"
    toml.write_text('[recipe.a]\nsource = "/x"\nbogus = 1\n[recipe.b]\nextends = "zz"\n')
    with pytest.raises(UsageError, match="unknown keys"):
        recipes.load_recipe("a", toml)
    with pytest.raises(UsageError, match="extends unknown recipe 'zz'"):
        recipes.load_recipe("b", toml)
    toml.write_text('[recipe.a]\nextends = "b"\n[recipe.b]\nextends = "a"\n')
    with pytest.raises(UsageError, match="loops"):
        recipes.load_recipe("a", toml)


def test_unknown_arch_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        recipes.load_recipe("v6.1").fragment_paths("riscv64")


# --- config checking -----------------------------------------------------------------


def test_parse_kconfig() -> None:
    opts = kconfig.parse_kconfig(
        'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\nCONFIG_N=16\n# comment\n'
    )
    assert opts == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x y"', "CONFIG_N": "16"}


def test_check_config_reports_option_and_fragment(tmp_path: Path) -> None:
    virt = tmp_path / "virt.config"
    virt.write_text("CONFIG_SMP=y\nCONFIG_NR_CPUS=16\nCONFIG_TYPO_OPTION=y\n")
    debug = tmp_path / "debug.config"
    debug.write_text("CONFIG_PAGE_POISONING=y\n# CONFIG_PANIC_ON_OOPS is not set\n")
    final = (
        "CONFIG_SMP=y\nCONFIG_NR_CPUS=8\nCONFIG_PAGE_POISONING=y\n"
        "# CONFIG_PANIC_ON_OOPS is not set\n"
    )
    bad = kconfig.check_config(final, [virt, debug])
    assert {(m.option, m.wanted, m.got, m.fragment) for m in bad} == {
        ("CONFIG_NR_CPUS", "16", "8", "virt.config"),
        ("CONFIG_TYPO_OPTION", "y", "n", "virt.config"),
    }
    message = str(kconfig.config_error(bad, tmp_path / ".config"))
    assert "CONFIG_TYPO_OPTION" in message and "virt.config" in message
    assert "not set" in message


def test_check_config_later_fragment_wins_and_unset_matches_absent(tmp_path: Path) -> None:
    a = tmp_path / "a.config"
    a.write_text("CONFIG_X=y\nCONFIG_Y=y\n")
    b = tmp_path / "b.config"
    b.write_text("# CONFIG_X is not set\n")
    assert kconfig.check_config("CONFIG_Y=y\n", [a, b]) == []
    bad = kconfig.check_config("CONFIG_X=y\nCONFIG_Y=y\n", [a, b])
    assert [(m.option, m.fragment) for m in bad] == [("CONFIG_X", "b.config")]


def test_shipped_fragments_parse() -> None:
    for arch in ("x86_64", "aarch64"):
        wanted = kconfig.requested_options(recipes.load_recipe("v6.1").fragment_paths(arch))
        assert wanted["CONFIG_PAGE_POISONING"] == ("y", "debug.config")
        assert wanted["CONFIG_MEMCG"][0] == "y"
        assert wanted["CONFIG_PANIC_ON_OOPS"][0] == "n"
    assert "CONFIG_64BIT" in kconfig.requested_options(
        recipes.load_recipe("v6.1").fragment_paths("x86_64")
    )


def test_has_option(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text('CONFIG_A=y\nCONFIG_M=m\n# CONFIG_B is not set\nCONFIG_S="s"\n')
    k = builder.BuiltKernel(
        arch=get_arch("aarch64"),
        image=tmp_path / "Image",
        config=config,
        source_identity="x",
        recipe="r",
        patches=(),
        compiler="gcc",
        build_log=tmp_path / "build.log",
        directory=tmp_path,
    )
    assert k.has_option("A") and k.has_option("CONFIG_M") and k.has_option("S")
    assert not k.has_option("B") and not k.has_option("NOPE")
    assert k.option("S") == '"s"'
    d = k.to_dict()
    assert d["image"] == str(tmp_path / "Image") and d["patches"] == []


# --- patching ------------------------------------------------------------------------


def _tiny_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "mm").mkdir(parents=True)
    (tree / "mm" / "oom_kill.c").write_text("line 1\n\ttlb_gather_mmu(&tlb, mm);\nline 3\n")
    return tree


def _diff(old: str, new: str) -> str:
    return (
        "From: oomrace <oomrace@localhost>\nSubject: [PATCH] test\n\n---\n"
        "diff --git a/mm/oom_kill.c b/mm/oom_kill.c\n"
        "--- a/mm/oom_kill.c\n+++ b/mm/oom_kill.c\n"
        f"@@ -1,3 +1,3 @@\n line 1\n-{old}\n+{new}\n line 3\n"
    )


def test_patched_paths() -> None:
    text = _diff("\ta", "\tb") + "--- /dev/null\n+++ b/new/file.c\t2020-01-01\n"
    text += "diff --git a/x b/y\nrename from old/name.c\nrename to new/name.c\n"
    assert patched_paths(text) == ["mm/oom_kill.c", "new/file.c", "old/name.c"]


def test_patch_into_hardlinked_copy_leaves_original_alone(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-al", str(tree), str(copy)], check=True)
    assert (copy / "mm" / "oom_kill.c").stat().st_nlink == 2
    patch = tmp_path / "0001-good.patch"
    patch.write_text(_diff("\ttlb_gather_mmu(&tlb, mm);", "\ttlb_gather_mmu_fullmm(&tlb, mm);"))
    apply_patch(copy, patch)
    assert "tlb_gather_mmu_fullmm" in (copy / "mm" / "oom_kill.c").read_text()
    assert "tlb_gather_mmu_fullmm" not in (tree / "mm" / "oom_kill.c").read_text()
    assert (tree / "mm" / "oom_kill.c").stat().st_nlink == 1


def test_patch_failure_names_patch_and_hunk(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path)
    patch = tmp_path / "0009-bad.patch"
    patch.write_text(_diff("\tsomething_else(&tlb);", "\tnew_thing(&tlb);"))
    with pytest.raises(KernelError) as e:
        apply_patch(tree, patch)
    text = str(e.value)
    assert "0009-bad.patch" in text
    assert "Hunk #1 FAILED" in text
    assert "-\tsomething_else(&tlb);" in text  # the rejected hunk itself


def test_patch_without_diff_is_rejected(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path)
    patch = tmp_path / "empty.patch"
    patch.write_text("just words\n")
    with pytest.raises(KernelError, match="no diff"):
        apply_patch(tree, patch)


# --- cache keys ----------------------------------------------------------------------


def test_cache_key_follows_patch_content(tmp_path: Path) -> None:
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_A=y\n")
    patch = tmp_path / "p.patch"
    patch.write_text(_diff("a", "b"))

    def key(**kw: object) -> str:
        args: dict[str, object] = {
            "source_identity": "debian:linux-source-6.1=6.1.192-2",
            "base_config": "tinyconfig",
            "fragments": [frag],
            "patches": [patch],
            "arch": "aarch64",
            "compiler": "gcc 12",
        }
        args.update(kw)
        return builder.cache_key(**args)  # type: ignore[arg-type]

    first = key()
    assert key() == first
    patch.write_text(_diff("a", "c"))
    assert key() != first
    changed_patch = key()
    assert key(patches=[]) != changed_patch
    assert key(arch="x86_64") != changed_patch
    assert key(compiler="gcc 13") != changed_patch
    assert key(source_identity="git:abc") != changed_patch
    frag.write_text("CONFIG_A=n\n")
    assert key() != changed_patch


def test_shipped_recipes_have_distinct_keys() -> None:
    keys = set()
    for name in recipes.recipe_names():
        r = recipes.load_recipe(name)
        keys.add(
            builder.cache_key(
                r.source, r.base_config, r.fragment_paths("aarch64"), r.patch_paths(), "aarch64",
                "g",
            )
        )
    assert len(keys) == len(recipes.recipe_names())


# --- sources -------------------------------------------------------------------------


def _fake_kernel_tree(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Makefile").write_text(
        "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 9\nEXTRAVERSION = -rc1\nNAME = x\n"
    )
    (root / "Kconfig").write_text("\n")
    (root / "mm").mkdir()
    (root / "mm" / "a.c").write_text("int a;\n")
    return root


def test_makefile_version_and_not_a_tree(tmp_path: Path) -> None:
    tree = _fake_kernel_tree(tmp_path / "linux")
    assert makefile_version(tree) == "6.1.9-rc1"
    with pytest.raises(UsageError):
        resolve_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a kernel source tree"):
        resolve_source(tmp_path / "empty")


def test_plain_tree_identity_changes_with_edits(tmp_path: Path) -> None:
    tree = _fake_kernel_tree(tmp_path / "linux")
    first = resolve_source(tree)
    assert first.kind == "tree" and first.identity.startswith("tree:6.1.9-rc1:")
    assert resolve_source(tree).identity == first.identity
    (tree / "mm" / "a.c").write_text("int a, b;\n")
    assert resolve_source(tree).identity != first.identity


def test_in_place_built_tree_is_refused(tmp_path: Path) -> None:
    tree = _fake_kernel_tree(tmp_path / "linux")
    (tree / ".config").write_text("CONFIG_A=y\n")
    with pytest.raises(UsageError, match=r"built in place \(\.config exists\).*mrproper"):
        resolve_source(tree)
    (tree / ".config").unlink()
    (tree / "include" / "generated").mkdir(parents=True)
    with pytest.raises(UsageError, match="include/generated exists"):
        resolve_source(tree)


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), *args], check=True, capture_output=True, text=True
    ).stdout


def test_git_identity_and_copy(tmp_path: Path) -> None:
    tree = _fake_kernel_tree(tmp_path / "linux")
    _git(tree, "init", "-q")
    (tree / ".gitignore").write_text("*.o\n")
    (tree / "mm" / "a.o").write_text("junk")
    _git(tree, "add", "-A")
    _git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    head = _git(tree, "rev-parse", "HEAD").strip()
    clean = resolve_source(tree)
    assert clean.kind == "git" and clean.identity == f"git:{head}"
    (tree / "mm" / "a.c").write_text("int changed;\n")
    dirty = resolve_source(tree)
    assert dirty.identity.startswith(f"git:{head}+dirty.")
    (tree / "mm" / "a.c").write_text("int changed again;\n")
    assert resolve_source(tree).identity != dirty.identity
    copy = tmp_path / "copy"
    link_tree(resolve_source(tree), copy)
    assert (copy / "mm" / "a.c").read_text() == "int changed again;\n"
    assert not (copy / "mm" / "a.o").exists()  # ignored build products stay behind
    assert not (copy / ".git").exists()


# --- progress ------------------------------------------------------------------------


def test_progress_plain_lines_when_not_a_tty(tmp_path: Path) -> None:
    out = tmp_path / "progress.txt"
    with out.open("w") as stream:
        p = progress.BuildProgress("kbuild x", True, stream)
        p.update("compiling: 1 objects")
        p.update("compiling: 2 objects")  # within 30 s of the first: not printed
        p.done("built Image")
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    assert "compiling: 1 objects" in lines[0] and "\r" not in lines[0]
    assert "built Image" in lines[1]


def test_main_kernel_build_unknown_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["kernel", "build", "--recipe", "nope", "--arch", "aarch64"]) == 2
    assert "valid recipes" in capsys.readouterr().err
    assert cli.main(["kernel", "build", "--list"]) == 0
    assert "v6.1-reaper-fullmm" in capsys.readouterr().out
