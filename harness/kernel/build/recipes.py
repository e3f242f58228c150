"""Kernel recipes: the named ways to build a kernel in configs/kernels.toml.

A recipe names a source, a base config, fragments from kernels/fragments (``{arch}`` in a
fragment name becomes the arch's ARCH=, so each arch has its ``virt-<ARCH>.config``) and
patches from kernels/patches; ``extends`` inherits another recipe's keys.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ...arches import get_arch
from ...errors import UsageError
from ...paths import data_path

KERNELS_DIR = data_path("kernels")
FRAGMENTS_DIR = KERNELS_DIR / "fragments"
PATCHES_DIR = KERNELS_DIR / "patches"
RECIPES_FILE = data_path("configs") / "kernels.toml"


@dataclass(frozen=True)
class Recipe:
    """A named way to build a kernel (one table of configs/kernels.toml)."""

    name: str
    source: str  # "debian:<package>", a tarball (name, path or URL), a tree or git repo
    sha256: str | None = None  # of a tarball source: checked before it is used
    ref: str | None = None  # with a git repository as source: the commit to build
    base_config: str = "tinyconfig"  # a make *config target, or a path to a .config
    fragments: tuple[str, ...] = ()  # names in kernels/fragments (or paths); may use {arch}
    patches: tuple[str, ...] = ()  # names in kernels/patches (or paths), applied in order
    cmdline: tuple[str, ...] = ()  # kernel command line additions for booting it
    description: str = ""

    def fragment_paths(self, arch: str) -> list[Path]:
        """The fragment files for `arch`, {arch} filled with its ARCH= (virt-arm64.config)."""
        kernel_arch = get_arch(arch).kernel_arch
        return [_input_path(FRAGMENTS_DIR, _fragment_name(f, kernel_arch, self.name))
                for f in self.fragments]

    def patch_paths(self) -> list[Path]:
        return [_input_path(PATCHES_DIR, p) for p in self.patches]


def _fragment_name(template: str, arch: str, recipe: str) -> str:
    """A fragment name with its {arch} filled in; other braces are a recipe error, not a
    KeyError from str.format."""
    try:
        return template.format(arch=arch)
    except (KeyError, IndexError, ValueError, AttributeError):
        raise UsageError(f"recipe {recipe}: fragment {template!r} may use only {{arch}} in "
                         "braces (write {{ and }} for literal braces)") from None


def _input_path(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


_RECIPE_KEYS = {
    "source", "sha256", "ref", "base", "fragments", "patches", "cmdline", "description",
    "extends",
}


def _read_recipes(path: Path | None = None) -> dict[str, dict[str, object]]:
    path = path or RECIPES_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"kernel recipe file {path} is missing") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: {e}") from None
    recipes = data.get("recipe", {})
    if not isinstance(recipes, dict):
        raise UsageError(f"{path}: [recipe.NAME] tables expected")
    return recipes


def recipe_names(path: Path | None = None) -> list[str]:
    """Names of the recipes in configs/kernels.toml, in file order."""
    return list(_read_recipes(path))


def _str_list(where: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _optional_str(where: str, key: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{where}: {key} must be a string")
    return value


def load_recipe(name: str, path: Path | None = None) -> Recipe:
    """The recipe called `name`; unknown names raise UsageError listing the valid ones."""
    recipes = _read_recipes(path)
    where = f"{path or RECIPES_FILE} [recipe.{name!r}]"
    merged: dict[str, object] = {}
    seen: list[str] = []
    current: str | None = name
    while current is not None:  # follow `extends`, the child's keys winning
        if current not in recipes:
            valid = ", ".join(recipes) or "(none)"
            what = "unknown kernel recipe" if current == name else f"{where} extends unknown recipe"
            raise UsageError(f"{what} {current!r}; valid recipes: {valid}")
        if current in seen:
            raise UsageError(f"{where}: `extends` loops through {current!r}")
        seen.append(current)
        table = recipes[current]
        if not isinstance(table, dict):
            raise UsageError(f"{where}: not a table")
        unknown = set(table) - _RECIPE_KEYS
        if unknown:
            raise UsageError(
                f"{where}: unknown keys {sorted(unknown)}; valid: {sorted(_RECIPE_KEYS)}"
            )
        for key, value in table.items():
            merged.setdefault(key, value)
        parent = table.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise UsageError(f"{where}: extends must be a recipe name")
        current = parent
    source = merged.get("source")
    if not isinstance(source, str) or not source:
        raise UsageError(f"{where}: source is missing")
    base = merged.get("base", "tinyconfig")
    if not isinstance(base, str):
        raise UsageError(f"{where}: base must be a string")
    description = merged.get("description", "")
    fragments = _str_list(where, "fragments", merged.get("fragments", []))
    for fragment in fragments:  # refused now, not when a build reaches it
        _fragment_name(fragment, "x86", name)
    return Recipe(
        name=name,
        source=source,
        sha256=_optional_str(where, "sha256", merged.get("sha256")),
        ref=_optional_str(where, "ref", merged.get("ref")),
        base_config=base,
        fragments=fragments,
        patches=_str_list(where, "patches", merged.get("patches", [])),
        cmdline=_str_list(where, "cmdline", merged.get("cmdline", [])),
        description=description if isinstance(description, str) else "",
    )



# --- --kconfig and --kconfig-add: a recipe's config changed from the command line -------

_KCONFIG_ADD = re.compile(
    r'^CONFIG_[A-Za-z0-9_]+=(?:y|m|n|-?[0-9]+|0x[0-9A-Fa-f]+|"[^"\\\n]*")$')


@dataclass(frozen=True)
class KconfigChange:
    """`--kconfig FILE` (a full .config as the base instead of the recipe's) and
    `--kconfig-add CONFIG_X=y` options (a fragment, checked in the final .config as the
    recipe's fragments are)."""

    base: Path | None = None
    add: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.base is not None or bool(self.add)


def kconfig_change(base: str | Path | None, add: Sequence[str] = ()) -> KconfigChange:
    """The checked options; a one-line UsageError names a bad one and the form expected."""
    path = None
    if base is not None:
        path = Path(base).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"--kconfig {base}: no such file; give a full .config")
    for option in add:
        if not _KCONFIG_ADD.match(option.strip()):
            raise UsageError(f"--kconfig-add {option!r}: expected CONFIG_NAME=VALUE, the "
                             'value y, m, n, a number or a "string" (e.g. CONFIG_KASAN=y)')
    return KconfigChange(path, tuple(o.strip() for o in add))


def with_kconfig(recipe: Recipe, change: KconfigChange) -> Recipe:
    """`recipe` with its base config and fragments changed as `change` says."""
    if not change:
        return recipe
    fragments = recipe.fragments
    if change.add:
        fragments += (str(_added_fragment(change.add)),)
    what = [f"base {change.base}"] if change.base else []
    what += list(change.add)
    return replace(recipe, base_config=str(change.base or recipe.base_config),
                   fragments=fragments,
                   description=f"{recipe.description} (changed: {', '.join(what)})".strip())


def _added_fragment(options: Sequence[str]) -> Path:
    """The --kconfig-add options as a fragment file, named by its content (the build's
    cache key hashes fragment contents, so equal options share kernels)."""
    from ... import atomicio, cache

    text = "".join(f"{o}\n" for o in options)
    path = cache.cache_root() / "kconfig-add" / f"kconfig-add-{cache.digest(text)}.config"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicio.write_text(path, text)
    return path


# --- the recipe of `oomrace kernel build` ----------------------------------------------


DEFAULT_CONFIG_RECIPE = "v6.1"


def recipe_for_cli(name: str | None, source: str | None, config_from: str,
                   patches: Sequence[Path], sha256: str | None, ref: str | None) -> Recipe:
    """The recipe `kernel build` options describe: a named one (its source replaced by
    --source), or --source with the config of --config-from; --patch files appended."""
    if name is None and source is None:
        raise UsageError(
            "give --recipe NAME or --source PATH_OR_URL; valid recipes: "
            + ", ".join(recipe_names())
        )
    base = load_recipe(name or config_from)
    extra = tuple(str(p.expanduser().resolve()) for p in patches)
    for p in patches:
        if not p.is_file():
            raise UsageError(f"patch {p} does not exist")
    if source is None:
        return replace(base, patches=base.patches + extra)
    label = name or f"{Path(urllib.parse.urlparse(source).path).name or source}"
    return replace(
        base, name=label, source=source, sha256=sha256, ref=ref,
        patches=(base.patches if name else ()) + extra,
        description=f"{source} with the config of {base.name}",
    )
