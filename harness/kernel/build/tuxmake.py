"""One kernel build through Linaro's tuxmake: what goes into it (BuildJob), the tuxmake
command lines for the arch, and the configure (then check the config) and compile steps.

tuxmake runs with ``--runtime null`` (host compilers) and ``--wrapper ccache``; the build
directory is a direct child of the copied tree, so kbuild refers to the sources as ``..``
and ccache hits across builds of different patch sets.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ... import cache
from ...arches import Arch
from ...errors import HarnessError, KernelError, MissingToolError
from ..kconfig import ConfigMismatch, check_config, config_error, kconfig_symbols
from .progress import BuildProgress, run_logged
from .prune import KIND
from .recipes import Recipe
from .source import Source, run_text
from .tree import CompatFix

BUILD_SUBDIR = "build"  # O= directory, a direct child of the copied source tree


@dataclass(frozen=True)
class BuildJob:
    """Everything one build reads; `key` names its cache entry."""

    recipe: Recipe
    arch: Arch
    source: Source
    fragments: tuple[Path, ...]
    patches: tuple[Path, ...]
    compiler: str
    key: str
    tux: tuple[str, ...] = ()  # how to run tuxmake
    compat: tuple[CompatFix, ...] = ()


def tuxmake_command() -> list[str]:
    if importlib.util.find_spec("tuxmake") is not None:
        return [sys.executable, "-m", "tuxmake"]
    exe = shutil.which("tuxmake")
    if exe is None:
        raise HarnessError(
            "tuxmake is not installed; install it with: pip install tuxmake "
            "(oomrace drives kernel builds through Linaro's tuxmake)"
        )
    return [exe]


def compiler_version(arch: Arch) -> str:
    """The first line of `--version` of the gcc the kernel build for `arch` uses."""
    gcc = arch.cross_compile + "gcc"
    if shutil.which(gcc) is None:
        raise MissingToolError(gcc, arch.kernel_compiler_package())
    return run_text([gcc, "--version"]).splitlines()[0].strip()


def require_build_tools() -> None:
    for tool, package in (
        ("make", "make"),
        ("ccache", "ccache"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("patch", "patch"),
    ):
        if shutil.which(tool) is None:
            raise MissingToolError(tool, package)


def arch_options(arch: Arch) -> list[str]:
    """tuxmake options for `arch`: --target-arch becomes ARCH= (tuxmake refuses ARCH= as a
    make variable), --kernel-image the image target."""
    return [f"--target-arch={arch.kernel_arch}", f"--kernel-image={arch.image_name}"]


def arch_make_variables(arch: Arch) -> list[str]:
    """KEY=VALUE arguments, given just before the target: CROSS_COMPILE= from the Arch (for
    our arches the value tuxmake's own table has), so the Arch says which gcc builds."""
    return [f"CROSS_COMPILE={arch.cross_compile}"]


def tuxmake_argv(job: BuildJob, tree: Path, build_dir: Path, outdir: Path,
                 target: str) -> list[str]:
    """The tuxmake command line of one step (`config` or `kernel`) of `job`."""
    base = job.recipe.base_config
    if Path(base).expanduser().is_file():
        base = str(Path(base).expanduser().resolve())
    jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        *job.tux,
        "--runtime=null",
        *arch_options(job.arch),
        "--toolchain=gcc",
        "--wrapper=ccache",
        f"--jobs={jobs or 1}",
        f"--kconfig={base}",
        *[f"--kconfig-add={f.resolve()}" for f in job.fragments],
        f"--environment=KBUILD_BUILD_TIMESTAMP={_build_timestamp(job.source.timestamp)}",
        "--environment=KBUILD_BUILD_USER=oomrace",
        "--environment=KBUILD_BUILD_HOST=oomrace",
        # tuxmake maps the absolute build dir away with -ffile-prefix-map; with our
        # relative srctree (`..`) that is not needed, and it would defeat ccache.
        "--environment=KCFLAGS=",
        "--color=never",
        f"--directory={tree}",
        f"--build-dir={build_dir}",
        f"--output-dir={outdir}",
        *arch_make_variables(job.arch),
        target,
    ]


def _build_timestamp(epoch: int) -> str:
    """What `uname -v` shows as build date; fixed per source for reproducible builds."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))


def run_tuxmake(
    job: BuildJob, out: Path, tree: Path, build_dir: Path, log: IO[str], progress: BuildProgress
) -> None:
    """Configure (and check the config), then compile, both through tuxmake."""
    # tuxmake's ccache wrapper takes CCACHE_DIR from the environment (default ~/.ccache)
    # and refuses it as --environment; it sets CCACHE_NOHASHDIR itself.
    env = dict(os.environ, CCACHE_DIR=str(_ccache_dir()))
    tux_out = out / "tuxmake"
    (tux_out / "configure").mkdir(parents=True)
    steps = (("configuring", "config", tux_out / "configure"), ("compiling", "kernel", tux_out))
    for stage, target, outdir in steps:
        argv = tuxmake_argv(job, tree, build_dir, outdir, target)
        expected = read_objects_hint(job.arch) if target == "kernel" else None
        status = run_logged(argv, log, env, progress, stage, build_dir, expected)
        if status != 0:
            log.flush()
            raise KernelError(
                f"kernel build failed while {stage} (tuxmake exit status {status}) for recipe "
                f"{job.recipe.name} ({job.arch.name}); last lines of the log:\n"
                f"{_tail(Path(log.name))}"
            )
        if target == "config":
            check_fragments(tree, build_dir / ".config", job.fragments, log)
    # Keep tuxmake's metadata.json and reproducer.sh; its logs repeat our build.log and
    # its artifacts are copied to the top of the entry.
    for name in ("build.log", "build-debug.log", "config", job.arch.image_name):
        for path in (tux_out / name, tux_out / "configure" / name):
            if path.is_file():
                path.unlink()


def check_fragments(tree: Path, config: Path, fragments: Sequence[Path], log: IO[str]) -> None:
    """Every fragment option must be in the final .config, except options this kernel
    version does not have at all (a fragment serves several versions): those are logged."""
    mismatches = check_config(config.read_text(errors="replace"), fragments)
    missing: list[ConfigMismatch] = []
    if mismatches:
        known = kconfig_symbols(tree, skip_subdir=BUILD_SUBDIR)
        missing = [m for m in mismatches if m.option.removeprefix("CONFIG_") not in known]
        mismatches = [m for m in mismatches if m not in missing]
    if mismatches:
        raise config_error(mismatches, config)
    for m in missing:
        log.write(f"# config check: {m.option} ({m.fragment}) does not exist in this kernel\n")
    log.write(f"# config check: all {len(fragments)} fragment(s) applied\n")


def _ccache_dir() -> Path:
    path = cache.cache_root() / "ccache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def objects_hint_file(arch: Arch) -> Path:
    """Object count of the last build for `arch`: the progress line's estimate of 100%."""
    return cache.cache_root() / KIND / f".objects-{arch.name}.txt"


def read_objects_hint(arch: Arch) -> int | None:
    try:
        return int(objects_hint_file(arch).read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
