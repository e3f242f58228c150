"""Build patched kernels from named recipes, cached by everything that goes into them.

A recipe (configs/kernels.toml) names a source (Debian's linux-source-6.1 package or a
tree given by path), a base config (``tinyconfig``), config fragments from
kernels/fragments and patches from kernels/patches. ``build()`` turns a recipe and an
arch into a ``BuiltKernel``:

1. The source is resolved to a tree and an identity. Debian's tarball is installed with
   apt-get when missing and unpacked once into ``cache_root()/sources``; a git checkout
   is identified by HEAD and a hash of its uncommitted changes; any other tree by its
   Makefile version, path and a fingerprint of file sizes and mtimes.
2. The tree is copied as a farm of hard links (fast, no data copied) into a fresh
   work directory. Hard links share their data with the original, so before a patch
   is applied every file it touches is replaced by a private copy; the original tree is
   never written to. Patches are applied with ``patch -p1 --fuzz=0``; a failure names
   the patch file and shows the rejected hunks.
3. Linaro's tuxmake drives the build (``--runtime null``, host cross compilers,
   ``--wrapper ccache``): ``make <base>`` and ``scripts/kconfig/merge_config.sh`` for
   the fragments, then ``make`` with ``O=`` into a build directory. Between the config
   and compile steps every option the fragments ask for is checked against the final
   .config.
4. The build directory is a direct child of the copied tree, so kbuild refers to the
   sources as ``..``: command lines and preprocessed output then do not depend on where
   the work directory is, and ccache hits across builds of different patch sets.
5. The image, vmlinux, System.map, .config, the build log and tuxmake's metadata and
   reproducer are kept in ``cache_root()/kbuild/<key>``, where the key hashes the source
   identity, base config, fragment and patch contents, arch and compiler version.

The parts live in their own modules: kbuild_recipes (recipes), ksource (sources),
kconfig (configs and their check), kbuild_tuxmake (the tuxmake steps, with ARCH= and
CROSS_COMPILE= from arches.Arch), kbuild_progress (logged build steps) and kernel_build
(the cache entry and ``build()``). Their public names stay importable from here; this
module keeps the ``oomrace kernel build`` command line.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .errors import UsageError
from .kbuild_recipes import (
    FRAGMENTS_DIR,
    KERNELS_DIR,
    PATCHES_DIR,
    RECIPES_FILE,
    KconfigChange,
    Recipe,
    kconfig_change,
    load_recipe,
    recipe_names,
    with_kconfig,
)
from .kbuild_tuxmake import BUILD_SUBDIR, KIND, compiler_version, tuxmake_command
from .kconfig import (
    ConfigMismatch,
    check_config,
    config_error,
    kconfig_symbols,
    parse_kconfig,
    requested_options,
)
from .kernel_build import BUILD_SCHEME, BuiltKernel, build, cache_key
from .ksource import (
    DEBIAN_PREFIX,
    Source,
    apply_patch,
    debian_source,
    link_tree,
    makefile_version,
    patched_paths,
    recipe_source,
    resolve_source,
    unshare,
)

__all__ = [  # the parts live in their own modules; kept importable from here for callers
    "BUILD_SCHEME",
    "BUILD_SUBDIR",
    "DEBIAN_PREFIX",
    "FRAGMENTS_DIR",
    "KERNELS_DIR",
    "KIND",
    "PATCHES_DIR",
    "RECIPES_FILE",
    "BuiltKernel",
    "ConfigMismatch",
    "KconfigChange",
    "Recipe",
    "Source",
    "apply_patch",
    "build",
    "cache_key",
    "check_config",
    "compiler_version",
    "config_error",
    "debian_source",
    "kconfig_change",
    "kconfig_symbols",
    "link_tree",
    "load_recipe",
    "makefile_version",
    "parse_kconfig",
    "patched_paths",
    "recipe_for_cli",
    "recipe_names",
    "recipe_source",
    "requested_options",
    "resolve_source",
    "tuxmake_command",
    "unshare",
    "with_kconfig",
]


# --- command line ---------------------------------------------------------------------


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
