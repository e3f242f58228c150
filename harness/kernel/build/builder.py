"""Building a recipe for an arch into its cache entry, ``cache_root()/kbuild/<key>``.

The key hashes the source identity, base config, fragment and patch contents, arch and
compiler version. A build copies the tree as hard links into the entry's work directory,
applies the compat fixes and patches to that copy, runs tuxmake, and keeps the image,
vmlinux, System.map, .config, the build log and tuxmake's metadata and reproducer.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from ... import atomicio, cache, schema
from ...arches import Arch, get_arch
from ...errors import KernelError, UsageError
from ..image import option as config_option
from . import incremental
from .progress import BuildProgress, count_objects
from .prune import KIND, LAST_USED
from .recipes import Recipe, load_recipe
from .source import Source, git_commit_source, resolve_source
from .tree import apply_compat, apply_patch, compat_fixes, link_tree
from .tuxmake import (
    BUILD_SUBDIR,
    BuildJob,
    compiler_version,
    objects_hint_file,
    require_build_tools,
    run_tuxmake,
    tuxmake_command,
)

# Bump when the way a build is done changes in a way that changes its output.
BUILD_SCHEME = 2


@dataclass(frozen=True)
class BuiltKernel:
    """A kernel built from a recipe, with everything needed to boot and describe it."""

    arch: Arch
    image: Path
    config: Path
    source_identity: str
    recipe: str
    patches: tuple[str, ...]
    compiler: str
    build_log: Path
    directory: Path
    vmlinux: Path | None = None
    system_map: Path | None = None
    kernel_version: str = ""
    cmdline: tuple[str, ...] = ()
    cache_key: str = ""
    cached: bool = False  # True when this call found it already built
    fragments: tuple[str, ...] = field(default=())
    compat: tuple[str, ...] = field(default=())  # toolchain fixes selected for its version

    def option(self, name: str) -> str | None:
        """The value of CONFIG_<name> in the .config; None when not set."""
        return config_option(self.config, name)

    def has_option(self, name: str) -> bool:
        """Whether CONFIG_<name> is set (=y, =m or any value) in the .config."""
        return self.option(name) is not None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Path):
                d[key] = str(value)
            elif isinstance(value, Arch):
                d[key] = value.name
            elif isinstance(value, tuple):
                d[key] = list(value)
            else:
                d[key] = value
        return d


def config_identity(base_config: str, fragments: Sequence[Path]) -> list[object]:
    """What the config of a build depends on: the base (a target name, or a .config's
    content) and the fragments' contents, not their paths."""

    def content(p: Path) -> str:
        if not p.is_file():
            raise UsageError(f"{p} does not exist")
        return cache.file_digest(p)

    base = base_config
    base_path = Path(base_config).expanduser()
    if base_path.is_file():
        base = f"file:{cache.file_digest(base_path)}"
    return [base, [(p.name, content(p)) for p in fragments]]


def cache_key(
    source_identity: str,
    base_config: str,
    fragments: Sequence[Path],
    patches: Sequence[Path],
    arch: str,
    compiler: str,
) -> str:
    """The cache key of a build: content of fragments and patches, not their paths."""
    base, frags = config_identity(base_config, fragments)
    for p in patches:
        if not p.is_file():
            raise UsageError(f"{p} does not exist")
    return cache.digest(
        BUILD_SCHEME,
        source_identity,
        base,
        frags,
        [(p.name, cache.file_digest(p)) for p in patches],
        arch,
        compiler,
    )


def build(
    recipe_or_name: Recipe | str,
    arch: str,
    source_path: Path | None = None,
    progress: bool = True,
    commit: str | None = None,
) -> BuiltKernel:
    """Build (or find in the cache) the kernel a recipe describes, for `arch`. With
    `commit`, `source_path` is a git repository and that commit of it is built in a
    build directory of ours, whatever the repository has checked out (a bisect step)."""
    recipe = load_recipe(recipe_or_name) if isinstance(recipe_or_name, str) else recipe_or_name
    if source_path is not None:
        recipe = replace(recipe, source=str(source_path), sha256=None, ref=None)
    source = None
    if source_path is not None and commit is not None:
        source = git_commit_source(source_path.resolve(), commit)
    job = _plan(recipe, get_arch(arch), source)
    label = f"kbuild {recipe.name} {job.arch.name}"
    built: list[bool] = []

    def do_build(tmp: Path) -> None:
        require_build_tools()
        with_tux = replace(job, tux=tuple(tuxmake_command()))
        _build_into(tmp, with_tux, BuildProgress(label, progress))
        built.append(True)

    # Through cache.entry on a hit too: it checks the entry against its manifest, and a
    # damaged one is rebuilt rather than booted.
    final = cache.entry(KIND, job.key, do_build)
    # When it was last asked for: `oomrace cache prune --kernels-unused-for` reads it (a
    # file added to a sealed entry is allowed; the manifest checks the files it lists).
    (final / LAST_USED).touch()
    if progress and not built:
        print(f"[{label}] cached: {final}", file=sys.stderr)
    return _built_kernel(job, final, cached=not built)


def _plan(recipe: Recipe, arch: Arch, source: Source | None = None) -> BuildJob:
    """The inputs of a build and its cache key; missing files and tools are refused here."""
    fragments = recipe.fragment_paths(arch.name)
    patches = recipe.patch_paths()
    for p in [*fragments, *patches]:
        if not p.is_file():
            raise UsageError(f"recipe {recipe.name}: {p} does not exist")
    compiler = compiler_version(arch)
    if source is None:
        source = resolve_source(recipe.source, recipe.sha256, recipe.ref)
    compat = tuple(compat_fixes(source.version))
    key = cache_key(
        source.identity, recipe.base_config, fragments, [*(f.patch for f in compat), *patches],
        arch.name, compiler,
    )
    return BuildJob(recipe, arch, source, tuple(fragments), tuple(patches), compiler, key,
                    compat=compat)


def _built_kernel(job: BuildJob, entry: Path, cached: bool) -> BuiltKernel:
    vmlinux = entry / "vmlinux"
    system_map = entry / "System.map"
    return BuiltKernel(
        arch=job.arch,
        image=entry / job.arch.image_name,
        config=entry / "config",
        source_identity=job.source.identity,
        recipe=job.recipe.name,
        patches=tuple(p.name for p in job.patches),
        compiler=job.compiler,
        build_log=entry / "build.log",
        directory=entry,
        vmlinux=vmlinux if vmlinux.is_file() else None,
        system_map=system_map if system_map.is_file() else None,
        kernel_version=job.source.version,
        cmdline=job.recipe.cmdline,
        cache_key=job.key,
        cached=cached,
        fragments=tuple(p.name for p in job.fragments),
        compat=tuple(f.patch.name for f in job.compat),
    )


def _build_into(out: Path, job: BuildJob, progress: BuildProgress) -> None:
    """Fill the cache entry directory `out`: in a persistent build directory when the
    source allows it (incremental), else in out/work, removed at the end."""
    if not incremental.incremental(job.source, bool(job.patches or job.compat)):
        work = out / "work"
        work.mkdir()
        tree = work / "src"

        def fresh_copy(log: IO[str]) -> incremental.Checkout:
            compat = _prepare_tree(tree, job, log, progress)
            return incremental.Checkout(tree, tree / BUILD_SUBDIR, None, (), tuple(compat))

        _build_with(out, job, progress, fresh_copy, tree / BUILD_SUBDIR)
        shutil.rmtree(work)
        return
    config = cache.digest(*_config_of(job))
    key = incremental.build_dir_key(job.source, job.arch.name, config, job.compiler)
    with incremental.held(job.source, key) as bd:

        def check_out(log: IO[str]) -> incremental.Checkout:
            progress.update(f"checking out in build directory {bd.key}")
            return incremental.check_out(bd, job.source, job.compat, job.patches, log)

        _build_with(out, job, progress, check_out, bd.build_for(job.source))


def _config_of(job: BuildJob) -> list[object]:
    return config_identity(job.recipe.base_config, job.fragments)


def _build_with(out: Path, job: BuildJob, progress: BuildProgress,
                prepare: Callable[[IO[str]], incremental.Checkout], build_dir: Path) -> None:
    """Prepare the tree, configure and compile, keep the artifacts and the record."""
    log_path = out / "build.log"
    started = time.time()
    try:
        with log_path.open("w") as log:
            _write_log_header(log, job)
            _keep_inputs(out, job)
            checkout = prepare(log)
            run_tuxmake(job, out, checkout.tree, checkout.build, log, progress)
        objects = _keep_artifacts(out, checkout.build, job)
        rebuilt = incremental.objects_since(checkout.build, started)
        _write_record(out, job, checkout, (objects, rebuilt), progress)
        progress.done(f"built {job.arch.image_name} ({rebuilt} of {objects} objects compiled)")
    except BaseException as e:
        failed = _keep_failure(job.key, log_path, build_dir)
        progress.done("interrupted" if isinstance(e, KeyboardInterrupt) else "FAILED")
        if isinstance(e, KernelError):
            raise KernelError(f"{e}\n(build log: {failed / 'build.log'})") from None
        raise


def _write_log_header(log: IO[str], job: BuildJob) -> None:
    log.write(
        f"# oomrace kernel build: recipe {job.recipe.name}, arch {job.arch.name}\n"
        f"# source: {job.source.identity} ({job.source.tree})\n"
        f"# compiler: {job.compiler}\n# base config: {job.recipe.base_config}\n"
        f"# fragments: {', '.join(str(f) for f in job.fragments) or '-'}\n"
        f"# patches: {', '.join(str(p) for p in job.patches) or '-'}\n"
        f"# cache key: {job.key}\n"
    )


def _prepare_tree(tree: Path, job: BuildJob, log: IO[str],
                  progress: BuildProgress) -> list[str]:
    """Link the source into `tree` and patch the copy; the compat fixes that applied."""
    progress.update("copying source tree (hard links)")
    link_tree(job.source, tree)
    compat = [f.patch.name for f in job.compat if apply_compat(tree, f, log)]
    for patch in job.patches:
        progress.update(f"applying {patch.name}")
        apply_patch(tree, patch, log)
    return compat


def _keep_inputs(out: Path, job: BuildJob) -> None:
    """The patches and fragments as they were, in out/inputs."""
    inputs = out / "inputs"
    inputs.mkdir()
    for i, patch in enumerate(job.patches):
        shutil.copy2(patch, inputs / f"patch-{i:02d}-{patch.name}")
    for i, frag in enumerate(job.fragments):
        shutil.copy2(frag, inputs / f"fragment-{i:02d}-{frag.name}")


def _keep_artifacts(out: Path, build_dir: Path, job: BuildJob) -> int:
    """Copy the image, vmlinux, System.map and .config to the top of the entry; the number
    of objects built, remembered as the next build's progress estimate."""
    for name in ("vmlinux", "System.map"):
        if (build_dir / name).is_file():
            shutil.copy2(build_dir / name, out / name)
    shutil.copy2(build_dir / job.arch.kernel_image, out / job.arch.image_name)
    shutil.copy2(build_dir / ".config", out / "config")
    objects = count_objects(build_dir)
    objects_hint_file(job.arch).write_text(f"{objects}\n")
    return objects


def _write_record(out: Path, job: BuildJob, checkout: incremental.Checkout,
                  objects: tuple[int, int], progress: BuildProgress) -> None:
    info = {
        "recipe": job.recipe.name,
        "arch": job.arch.name,
        "source_identity": job.source.identity,
        "kernel_version": job.source.version,
        "base_config": job.recipe.base_config,
        "fragments": [f.name for f in job.fragments],
        "patches": [p.name for p in job.patches],
        "compat": list(checkout.compat),
        "compiler": job.compiler,
        "cache_key": job.key,
        "objects": objects[0],
        "objects_compiled": objects[1],
        # Incremental builds: the commit built in our clone (with the local changes and
        # patches committed on top), which local paths were copied, where it was built.
        "built_commit": checkout.commit,
        "local_changes": list(checkout.overlaid),
        "build_dir": str(checkout.build),
        "build_seconds": round(time.monotonic() - progress.start, 1),
    }
    atomicio.write_json(out / "kernel.json", schema.versioned(info))


def _keep_failure(key: str, log_path: Path, build_dir: Path) -> Path:
    """Keep a failed build's log and .config in cache_root()/kbuild/failed/<key>."""
    failed = cache.cache_root() / KIND / "failed" / key
    failed.mkdir(parents=True, exist_ok=True)
    if log_path.is_file():
        shutil.copy2(log_path, failed / "build.log")
    if (build_dir / ".config").is_file():
        shutil.copy2(build_dir / ".config", failed / "config")
    return failed
