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

import json
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import signals
from .arches import arch_help
from .errors import (
    EXIT_BAD_INPUT,
    HarnessError,
    MissingToolError,
    UsageError,
    harness_bug,
)
from .kbuild_recipes import (
    FRAGMENTS_DIR,
    KERNELS_DIR,
    PATCHES_DIR,
    RECIPES_FILE,
    Recipe,
    load_recipe,
    recipe_names,
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
    resolve_source,
    unshare,
)

__all__ = [  # the parts live in their own modules; kept importable from here for callers
    "BUILD_SCHEME", "BUILD_SUBDIR", "DEBIAN_PREFIX", "FRAGMENTS_DIR", "KERNELS_DIR", "KIND",
    "PATCHES_DIR", "RECIPES_FILE", "BuiltKernel", "ConfigMismatch", "Recipe", "Source",
    "apply_patch", "build", "cache_key", "check_config", "compiler_version", "config_error",
    "debian_source", "kconfig_symbols", "link_tree", "load_recipe", "main_kernel_build",
    "makefile_version", "parse_kconfig", "patched_paths", "recipe_for_cli", "recipe_names",
    "requested_options", "resolve_source", "tuxmake_command", "unshare",
]


# --- command line ---------------------------------------------------------------------


def main_kernel_build(argv: Sequence[str] | None = None) -> int:
    """`oomrace kernel build`: exit status; the image path is the last line printed."""
    from .inputs import OneLineParser

    parser = OneLineParser(
        prog="oomrace kernel build",
        description="Build (or find cached) a kernel: a recipe, or any source with the "
        "config of a recipe and your patches. Prints the image path last.",
    )
    parser.add_argument("--recipe", help="recipe name from configs/kernels.toml")
    parser.add_argument("--arch", action="append", default=[], help=arch_help())
    parser.add_argument(
        "--source",
        help="kernel tree, git repository, tarball (path, file name or URL); with --recipe "
        "it replaces the recipe's source",
    )
    parser.add_argument("--sha256", help="expected sha256 of a tarball source (needed for a URL)")
    parser.add_argument("--ref", help="with a git repository as --source: the commit to build")
    parser.add_argument("--patch", action="append", default=[], type=Path,
                        help="a patch to apply (patch -p1) after the recipe's; repeatable")
    parser.add_argument("--config-from", metavar="RECIPE", default=DEFAULT_CONFIG_RECIPE,
                        help="with --source and no --recipe: the recipe whose base config, "
                        f"fragments and boot options to use (default {DEFAULT_CONFIG_RECIPE})")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a bad option (the parser printed why)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    signals.install()  # SIGTERM/SIGHUP end the build like Ctrl-C: no half entry cached
    try:
        if args.list:
            for name in recipe_names():
                print(f"{name:<36} {load_recipe(name).description}")
            return 0
        recipe = recipe_for_cli(args.recipe, args.source, args.config_from, args.patch,
                                args.sha256, args.ref)
        from .arches import parse_arch_list

        arches = parse_arch_list(args.arch or ["aarch64"])
        results = [build(recipe, a.name, progress=not args.no_progress) for a in arches]
    except (UsageError, MissingToolError) as e:  # a bad option, or a tool to install
        print(f"oomrace: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except HarnessError as e:  # the build failed: the kernel build's own "verdict"
        print(f"oomrace: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a harness bug: one line here, the traceback in a file
        return harness_bug("oomrace kernel build", e)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            state = "cached" if r.cached else "built"
            print(f"{r.recipe} {r.arch} ({r.kernel_version}): {state}", file=sys.stderr)
            print(r.image)
    return 0


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
