"""Build patched kernels from named recipes, cached by everything that goes into them.

A recipe (configs/kernels.toml) names a source (Debian's linux-source-6.1 package or a
tree given by path), a base config (``tinyconfig``), config fragments from
kernels/fragments and patches from kernels/patches. ``builder.build()`` turns a recipe and
an arch into a ``BuiltKernel``:

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

The parts: recipes (configs/kernels.toml, and the recipe `oomrace kernel build` options
describe), source (where a tree comes from and what identifies it), tree (the patched
hard-link copy and the toolchain compat fixes), kernel.kconfig (configs and their check),
tuxmake (the tuxmake steps, with ARCH= and CROSS_COMPILE= from arches.Arch), progress
(logged build steps), incremental (persistent build directories), builder (the cache
entry and ``build()``) and prune (the cache's kernel entries and build directories, and
bounding them). This package re-exports nothing: import the module that holds a name.
"""
