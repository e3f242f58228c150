"""Incremental builds without compiling: our clone of a git tree (real git on a small
repository), what is copied over a commit, the --kconfig options, pruning."""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kernel import resolve
from harness.kernel.build import incremental, prune, recipes
from harness.kernel.build.source import resolve_source, status_paths


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c",
                           "user.email=t@t", *args], check=True, capture_output=True,
                          text=True).stdout


def _repo(root: Path) -> Path:
    tree = root / "linux"
    (tree / "mm").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 9\n")
    (tree / "Kconfig").write_text("config A\n\tbool\n")
    for name in ("a.c", "b.c", "c.c"):
        (tree / "mm" / name).write_text(f"int {name[0]};\n")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-qm", "one")
    return tree


def _mtimes(tree: Path) -> dict[str, int]:
    return {str(p.relative_to(tree)): p.stat().st_mtime_ns
            for p in (tree / "mm").iterdir()}


def _check_out(tree: Path, patches: tuple[Path, ...] = ()) -> incremental.Checkout:
    source = resolve_source(tree)
    key = incremental.build_dir_key(source, "aarch64", "config", "gcc")
    with incremental.held(source, key) as bd:
        return incremental.check_out(bd, source, (), patches, io.StringIO())


def test_a_new_commit_rewrites_only_the_files_it_changes(tmp_path: Path) -> None:
    tree = _repo(tmp_path)
    first = _check_out(tree)
    assert first.build == first.tree / "build" and first.overlaid == ()
    before = _mtimes(first.tree)
    time.sleep(0.02)
    (tree / "mm" / "b.c").write_text("int b2;\n")
    _git(tree, "commit", "-qam", "two")
    second = _check_out(tree)
    after = _mtimes(second.tree)
    assert (second.tree / "mm" / "b.c").read_text() == "int b2;\n"
    assert after["mm/b.c"] > before["mm/b.c"]
    assert after["mm/a.c"] == before["mm/a.c"] and after["mm/c.c"] == before["mm/c.c"]
    assert second.commit == _git(tree, "rev-parse", "HEAD").strip()


def test_every_clone_of_a_history_shares_one_build_directory(tmp_path: Path) -> None:
    tree = _repo(tmp_path)
    first = _check_out(tree)
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(tree), str(other)], check=True)
    (other / "mm" / "c.c").write_text("int c2;\n")
    _git(other, "commit", "-qam", "in the other clone")
    got = _check_out(other)  # a commit our clone lacks: fetched
    assert got.tree == first.tree and (got.tree / "mm" / "c.c").read_text() == "int c2;\n"


def test_local_changes_are_copied_and_committed_in_our_clone_only(tmp_path: Path) -> None:
    tree = _repo(tmp_path)
    _check_out(tree)
    (tree / "mm" / "a.c").write_text("int a_local;\n")
    (tree / "mm" / "new.c").write_text("int n;\n")
    (tree / "mm" / "c.c").unlink()
    status = _git(tree, "status", "--porcelain", "--ignored")
    index = (tree / ".git" / "index").read_bytes()
    got = _check_out(tree)
    assert set(got.overlaid) == {"mm/a.c", "mm/new.c", "mm/c.c"}
    assert (got.tree / "mm" / "a.c").read_text() == "int a_local;\n"
    assert (got.tree / "mm" / "new.c").is_file() and not (got.tree / "mm" / "c.c").exists()
    assert _git(got.tree, "status", "--porcelain") == ""  # committed in the clone
    assert got.commit != _git(tree, "rev-parse", "HEAD").strip()
    # The user's tree, index and refs are as they were.
    assert _git(tree, "status", "--porcelain", "--ignored") == status
    assert (tree / ".git" / "index").read_bytes() == index
    assert _git(tree, "log", "--format=%s") == "one\n"
    # Unchanged local edits are not rewritten on the next build.
    before = _mtimes(got.tree)
    again = _check_out(tree)
    assert _mtimes(again.tree)["mm/b.c"] == before["mm/b.c"]


def test_objects_of_a_killed_build_are_removed(tmp_path: Path) -> None:
    tree = _repo(tmp_path)
    got = _check_out(tree)
    got.build.mkdir()
    old, new = got.build / "old.o", got.build / "new.o"
    old.write_text("complete")
    os.utime(old, (time.time() - 100, time.time() - 100))
    record = got.tree.parent / prune.RECORD
    data = record.read_text().replace('"idle"', '"building"')
    record.write_text(data)  # as a SIGKILL leaves it: no `finally` ran
    new.write_text("half written")
    _check_out(tree)
    assert old.is_file() and not new.exists()


def test_patches_are_a_commit_on_top(tmp_path: Path) -> None:
    tree = _repo(tmp_path)
    patch = tmp_path / "p.patch"
    patch.write_text("--- a/mm/a.c\n+++ b/mm/a.c\n@@ -1 +1 @@\n-int a;\n+int a_patched;\n")
    got = _check_out(tree, (patch,))
    assert (got.tree / "mm" / "a.c").read_text() == "int a_patched;\n"
    assert (tree / "mm" / "a.c").read_text() == "int a;\n"
    plain = _check_out(tree)  # the patch is gone again, by checkout
    assert (plain.tree / "mm" / "a.c").read_text() == "int a;\n"


def test_which_sources_build_incrementally(tmp_path: Path) -> None:
    tree = _repo(tmp_path)
    git_source = resolve_source(tree)
    assert incremental.incremental(git_source, patched=True)
    (tree / ".git").rename(tmp_path / "git")
    plain = resolve_source(tree)
    assert incremental.incremental(plain, patched=False)
    assert not incremental.incremental(plain, patched=True)  # patched: a private copy


def test_status_paths_of_renames_and_spaces() -> None:
    out = " M mm/a.c\0R  new name.c\0old.c\0?? x/y.c\0 D gone.c\0"
    assert status_paths(out) == ("gone.c", "mm/a.c", "new name.c", "old.c", "x/y.c")


def test_overlay_never_leaves_the_tree(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "evil.c").write_text("x")
    assert incremental.overlay(tmp_path / "dest", tmp_path / "src", ["../evil.c"]) == ()
    assert (tmp_path / "evil.c").read_text() == "x"


def test_kconfig_options(tmp_path: Path) -> None:
    change = recipes.kconfig_change(None, ["CONFIG_KASAN=y", 'CONFIG_CMDLINE="a b"',
                                          "CONFIG_NR_CPUS=8"])
    recipe = recipes.with_kconfig(recipes.load_recipe("v6.1"), change)
    added = Path(recipe.fragments[-1])
    assert added.read_text() == 'CONFIG_KASAN=y\nCONFIG_CMDLINE="a b"\nCONFIG_NR_CPUS=8\n'
    assert recipe.fragment_paths("aarch64")[-1] == added
    for bad in ("KASAN=y", "CONFIG_KASAN", "CONFIG_X=yes please", "CONFIG_X=$(rm)"):
        with pytest.raises(UsageError, match=r"--kconfig-add .*CONFIG_NAME=VALUE"):
            recipes.kconfig_change(None, [bad])
    with pytest.raises(UsageError, match=r"--kconfig .*no such file"):
        recipes.kconfig_change(tmp_path / "nope.config")
    full = tmp_path / "my.config"
    full.write_text("CONFIG_A=y\n")
    based = recipes.with_kconfig(recipes.load_recipe("v6.1"), recipes.kconfig_change(full))
    assert based.base_config == str(full.resolve())
    assert recipes.with_kconfig(recipe, recipes.KconfigChange()) is recipe


def test_kconfig_needs_a_recipe_kernel() -> None:
    from harness.arches import get_arch

    with pytest.raises(UsageError, match="--kernel debian is not a recipe"):
        resolve.resolve("debian", get_arch("aarch64"),
                        recipes.kconfig_change(None, ["CONFIG_A=y"]))


def _fake_dir(key: str, used: float, size: int) -> None:
    path = prune.build_dirs_root() / key
    origin = prune.build_dirs_root().parent / "o" / key
    origin.mkdir(parents=True)
    (path / "src").mkdir(parents=True)
    (path / "src" / "blob").write_bytes(b"x" * size)
    (path / prune.RECORD).write_text(
        f'{{"schema_version": 1, "origin": "{origin}", "in_place": true, '
        f'"last_used": {used}}}')


def test_prune_removes_the_least_recently_used(tmp_path: Path) -> None:
    now = time.time()
    for i, key in enumerate(("old", "mid", "new")):
        _fake_dir(key, now - 100 * (3 - i), 64 << 10)
    assert [d.key for d in prune.build_dirs()] == ["new", "mid", "old"]
    assert [d.key for d in prune.prune_build_dirs(max_dirs=2)] == ["old"]
    assert [d.key for d in prune.prune_build_dirs(max_bytes=100 << 10)] == ["mid"]
    with incremental.cache.locked(prune.build_dirs_root() / ".new.lock"):
        pass  # a free lock: prunable
    listing = prune.listing()
    assert [d["key"] for d in listing["build_dirs"]] == ["new"]  # type: ignore[index]


def test_prune_skips_a_directory_in_use(tmp_path: Path) -> None:
    _fake_dir("busy", time.time() - 500, 10)
    _fake_dir("idle", time.time(), 10)
    lock = prune.build_dirs_root() / ".busy.lock"
    with incremental.cache.locked(lock):
        pid = os.fork()
        if pid == 0:  # another process: its prune must not take our lock
            os._exit(0 if prune.prune_build_dirs(max_dirs=1) == [] else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (prune.build_dirs_root() / "busy").is_dir()


def test_cache_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    _fake_dir("d1", time.time(), 10)
    assert cli.main(["cache"]) == 0
    assert "/o/d1" in capsys.readouterr().out
    _fake_dir("d2", time.time() - 10, 10)
    (prune.build_dirs_root().parent / "o" / "d2").rmdir()  # its origin deleted: removed at once
    assert [d.key for d in prune.prune_build_dirs(max_dirs=5)] == ["d2"]
    assert cli.main(["cache", "--max-dirs", "1"]) == 2  # a limit without prune
    assert cli.main(["cache", "prune", "--max-dirs", "0"]) == 0
    assert "removed build dirs: 1" in capsys.readouterr().out
    assert not (prune.build_dirs_root() / "d1").exists()


def test_prune_kernels_by_last_use(tmp_path: Path) -> None:
    from harness.cache import cache_root

    old = time.time() - 10 * 86400
    for key in ("unused", "used"):
        entry = cache_root() / "kbuild" / key
        entry.mkdir(parents=True)
        (entry / "kernel.json").write_text('{"schema_version": 1, "recipe": "v6.1"}')
        os.utime(entry / "kernel.json", (old, old))
    (cache_root() / "kbuild" / "used" / ".last-used").touch()  # as builder.build does
    removed = prune.prune(None, None, kernels_unused_days=5)
    assert [k["key"] for k in removed["removed_kernels"]] == ["unused"]  # type: ignore[index]
    assert (cache_root() / "kbuild" / "used").is_dir()
