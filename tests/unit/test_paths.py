"""The project's data folders are found in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import paths
from harness.errors import HarnessError
from harness.kernel.build import recipes


def test_kernels_folder_holds_every_recipe_input() -> None:
    kernels = paths.project_dir("kernels")
    assert (paths.project_dir("configs") / "kernels.toml").is_file()
    for name in recipes.recipe_names():
        recipe = recipes.load_recipe(name)
        for patch in recipe.patch_paths():
            assert patch.is_file() and patch.is_relative_to(kernels), patch


def test_an_installed_copy_wins_over_the_folder_beside_the_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = tmp_path / "harness"
    (installed / paths.INSTALLED_DATA / "kernels").mkdir(parents=True)
    monkeypatch.setattr(paths.resources, "files", lambda package: installed)
    assert paths.project_dir("kernels") == installed / paths.INSTALLED_DATA / "kernels"
    # Not installed: the checkout's folder.
    assert paths.project_dir("rootfs") == paths.PROJECT_ROOT / "rootfs"
    with pytest.raises(HarnessError, match="missing"):
        paths.project_dir("no-such-folder")


def test_the_wheel_lists_every_subpackage() -> None:
    """setuptools packs only the packages pyproject.toml names: a new subpackage left out
    of the list would be missing from an installed oomrace."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "harness").rglob("__init__.py") if "_project" not in p.parts}
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"
