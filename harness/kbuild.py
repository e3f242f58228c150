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
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from . import atomicio, cache, schema, signals
from .arches import Arch, get_arch
from .errors import (
    HarnessError,
    KernelError,
    MissingToolError,
    UsageError,
)
from .ksource import (
    DEBIAN_PREFIX,
    CompatFix,
    Source,
    apply_compat,
    apply_patch,
    compat_fixes,
    debian_source,
    link_tree,
    makefile_version,
    patched_paths,
    resolve_source,
    run_text,
    unshare,
)
from .paths import data_path
from .proc import end_group

__all__ = [  # sources live in ksource; kept importable from here for callers
    "DEBIAN_PREFIX", "Source", "apply_patch", "debian_source", "link_tree",
    "makefile_version", "patched_paths", "resolve_source", "unshare",
]

# Bump when the way a build is done changes in a way that changes its output.
BUILD_SCHEME = 2

KERNELS_DIR = data_path("kernels")
FRAGMENTS_DIR = KERNELS_DIR / "fragments"
PATCHES_DIR = KERNELS_DIR / "patches"
RECIPES_FILE = data_path("configs") / "kernels.toml"

BUILD_SUBDIR = "build"  # O= directory, a direct child of the copied source tree
KIND = "kbuild"  # cache_root()/kbuild/<key>: built kernels


@dataclass(frozen=True)
class _ArchBuild:
    """How to build a kernel for one of our arches (keyed by Arch.name)."""

    tux_arch: str  # tuxmake --target-arch, also the {arch} placeholder in fragment names
    cross_compile: str
    image_name: str  # arch/<..>/boot/<image_name>
    image_path: str  # inside the build directory
    host_machine: str  # `uname -m` on which the compiler is the native one


_ARCH_BUILDS: dict[str, _ArchBuild] = {
    "x86_64": _ArchBuild(
        "x86_64", "x86_64-linux-gnu-", "bzImage", "arch/x86/boot/bzImage", "x86_64"
    ),
    "aarch64": _ArchBuild(
        "arm64", "aarch64-linux-gnu-", "Image", "arch/arm64/boot/Image", "aarch64"
    ),
}


def _arch(name: str) -> tuple[Arch, _ArchBuild]:
    arch = get_arch(name)
    try:
        return arch, _ARCH_BUILDS[arch.name]
    except KeyError:
        raise UsageError(f"no kernel build support for arch {arch.name!r}") from None


def _compiler_package(ab: _ArchBuild) -> str:
    if os.uname().machine == ab.host_machine:
        return "gcc"
    return "gcc-" + ab.cross_compile.rstrip("-").replace("_", "-")


# --- recipes -------------------------------------------------------------------------


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
        _, ab = _arch(arch)
        return [_input_path(FRAGMENTS_DIR, _fragment_name(f, ab.tux_arch, self.name))
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


# --- kconfig fragments and checking --------------------------------------------------

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^#\s*(CONFIG_[A-Za-z0-9_]+) is not set\s*$")


def parse_kconfig(text: str) -> dict[str, str]:
    """Options of a .config or fragment: name -> value, with "n" for `is not set`."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _SET.match(line)
        if m:
            options[m.group(1)] = m.group(2).strip()
            continue
        m = _UNSET.match(line)
        if m:
            options[m.group(1)] = "n"
    return options


@dataclass(frozen=True)
class ConfigMismatch:
    option: str
    wanted: str
    got: str  # "n" when absent or not set
    fragment: str

    def __str__(self) -> str:
        def show(v: str) -> str:
            return "not set" if v == "n" else v

        return (
            f"{self.option}: {self.fragment} asks for {show(self.wanted)}, "
            f"the final .config has {show(self.got)}"
        )


def requested_options(fragments: Sequence[Path]) -> dict[str, tuple[str, str]]:
    """option -> (value, fragment name); a later fragment overrides an earlier one."""
    wanted: dict[str, tuple[str, str]] = {}
    for frag in fragments:
        for option, value in parse_kconfig(frag.read_text()).items():
            wanted[option] = (value, frag.name)
    return wanted


def check_config(config_text: str, fragments: Sequence[Path]) -> list[ConfigMismatch]:
    """Every option the fragments request that the final .config does not have."""
    final = parse_kconfig(config_text)
    bad = []
    for option, (value, frag) in requested_options(fragments).items():
        got = final.get(option, "n")
        if got != value:
            bad.append(ConfigMismatch(option, value, got, frag))
    return bad


def config_error(mismatches: Sequence[ConfigMismatch], config: Path) -> KernelError:
    lines = "\n".join(f"  {m}" for m in mismatches)
    frags = ", ".join(sorted({m.fragment for m in mismatches}))
    return KernelError(
        f"{len(mismatches)} option(s) requested by {frags} did not make it into the "
        f"final .config ({config}); they are probably misspelt, or depend on an option "
        f"that is off (check with `make menuconfig` and search for the name):\n{lines}"
    )


# --- running tuxmake with a progress line ----------------------------------------------


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


def compiler_version(ab: _ArchBuild) -> str:
    gcc = ab.cross_compile + "gcc"
    if shutil.which(gcc) is None:
        raise MissingToolError(gcc, _compiler_package(ab))
    return run_text([gcc, "--version"]).splitlines()[0].strip()


def _require_build_tools() -> None:
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


def _count_objects(build_dir: Path) -> int:
    n = 0
    for _, _, files in os.walk(build_dir):
        n += sum(1 for f in files if f.endswith(".o"))
    return n


class _Progress:
    """A one-line status on a tty, a plain line every 30 s otherwise; nothing if disabled."""

    def __init__(self, label: str, enabled: bool, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.start = time.monotonic()
        self.last_plain = 0.0
        self.shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        line = f"[{self.label}] {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d} {text}"
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + line[:width])
            self.stream.flush()
            self.shown = True
        elif elapsed - self.last_plain >= 30 or self.last_plain == 0:
            self.last_plain = max(elapsed, 1e-9)
            self.stream.write(line + "\n")
            self.stream.flush()

    def done(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")
        elapsed = time.monotonic() - self.start
        self.stream.write(f"[{self.label}] {text} in {elapsed:.0f}s\n")
        self.stream.flush()


def _run_logged(
    argv: Sequence[str],
    log: IO[str],
    env: Mapping[str, str],
    progress: _Progress,
    stage: str,
    build_dir: Path,
    expected_objects: int | None,
) -> int:
    """Run `argv`, teeing its output into `log` and updating `progress`; its exit status."""
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env),
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # its own group: make's compilers are ended with it
        preexec_fn=signals.on_parent_death(signal.SIGTERM),  # tuxmake stops make if we die
    )
    last = [""]

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.strip() and not line.startswith(("make ", "$ ")):
                last[0] = line.strip()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            objects = _count_objects(build_dir) if build_dir.is_dir() else 0
            text = f"{stage}: {objects} objects"
            if expected_objects:
                text += f" (~{min(99, 100 * objects // expected_objects)}%)"
            if last[0]:
                text += f" | {last[0]}"
            progress.update(text)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
    except BaseException:
        end_group(proc)
        raise
    finally:
        reader.join(timeout=10)
        log.flush()
    return proc.returncode


# --- building ------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltKernel:
    """A kernel built from a recipe, with everything needed to boot and describe it."""

    arch: str  # "x86_64" | "aarch64"
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
        key = name if name.startswith("CONFIG_") else f"CONFIG_{name}"
        value = parse_kconfig(self.config.read_text(errors="replace")).get(key)
        return None if value in (None, "n") else value

    def has_option(self, name: str) -> bool:
        """Whether CONFIG_<name> is set (=y, =m or any value) in the .config."""
        return self.option(name) is not None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Path):
                d[key] = str(value)
            elif isinstance(value, tuple):
                d[key] = list(value)
            else:
                d[key] = value
        return d


def cache_key(
    source_identity: str,
    base_config: str,
    fragments: Sequence[Path],
    patches: Sequence[Path],
    arch: str,
    compiler: str,
) -> str:
    """The cache key of a build: content of fragments and patches, not their paths."""

    def content(p: Path) -> str:
        if not p.is_file():
            raise UsageError(f"{p} does not exist")
        return cache.file_digest(p)

    base = base_config
    base_path = Path(base_config).expanduser()
    if base_path.is_file():
        base = f"file:{cache.file_digest(base_path)}"
    return cache.digest(
        BUILD_SCHEME,
        source_identity,
        base,
        [(p.name, content(p)) for p in fragments],
        [(p.name, content(p)) for p in patches],
        arch,
        compiler,
    )


def _ccache_dir() -> Path:
    path = cache.cache_root() / "ccache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _objects_hint_file(arch: str) -> Path:
    return cache.cache_root() / KIND / f".objects-{arch}.txt"


def _read_hint(arch: str) -> int | None:
    try:
        return int(_objects_hint_file(arch).read_text().strip())
    except (OSError, ValueError):
        return None


def _failure_dir(key: str) -> Path:
    path = cache.cache_root() / KIND / "failed" / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def build(
    recipe_or_name: Recipe | str,
    arch: str,
    source_path: Path | None = None,
    progress: bool = True,
) -> BuiltKernel:
    """Build (or find in the cache) the kernel a recipe describes, for `arch`."""
    recipe = load_recipe(recipe_or_name) if isinstance(recipe_or_name, str) else recipe_or_name
    arch_info, ab = _arch(arch)
    if source_path is not None:
        recipe = replace(recipe, source=str(source_path), sha256=None, ref=None)
    fragments = recipe.fragment_paths(arch_info.name)
    patches = recipe.patch_paths()
    for p in [*fragments, *patches]:
        if not p.is_file():
            raise UsageError(f"recipe {recipe.name}: {p} does not exist")
    compiler = compiler_version(ab)
    source = resolve_source(recipe.source, recipe.sha256, recipe.ref)
    compat = tuple(compat_fixes(source.version))
    key = cache_key(
        source.identity, recipe.base_config, fragments, [*(f.patch for f in compat), *patches],
        arch_info.name, compiler,
    )
    label = f"kbuild {recipe.name} {arch_info.name}"
    built: list[bool] = []

    def do_build(tmp: Path) -> None:
        _require_build_tools()
        job = _Job(recipe, arch_info.name, ab, source, tuple(fragments), tuple(patches),
                   compiler, key, tuple(tuxmake_command()), compat)
        _build_into(tmp, job, _Progress(label, progress))
        built.append(True)

    # Through cache.entry on a hit too: it checks the entry against its manifest, and a
    # damaged one is rebuilt rather than booted.
    final = cache.entry(KIND, key, do_build)
    if progress and not built:
        print(f"[{label}] cached: {final}", file=sys.stderr)
    vmlinux = final / "vmlinux"
    system_map = final / "System.map"
    return BuiltKernel(
        arch=arch_info.name,
        image=final / ab.image_name,
        config=final / "config",
        source_identity=source.identity,
        recipe=recipe.name,
        patches=tuple(p.name for p in patches),
        compiler=compiler,
        build_log=final / "build.log",
        directory=final,
        vmlinux=vmlinux if vmlinux.is_file() else None,
        system_map=system_map if system_map.is_file() else None,
        kernel_version=source.version,
        cmdline=recipe.cmdline,
        cache_key=key,
        cached=not built,
        fragments=tuple(p.name for p in fragments),
        compat=tuple(f.patch.name for f in compat),
    )


@dataclass(frozen=True)
class _Job:
    recipe: Recipe
    arch: str
    ab: _ArchBuild
    source: Source
    fragments: tuple[Path, ...]
    patches: tuple[Path, ...]
    compiler: str
    key: str
    tux: tuple[str, ...]
    compat: tuple[CompatFix, ...] = ()


def _build_into(out: Path, job: _Job, progress: _Progress) -> None:
    """Fill the cache entry directory `out`; work happens in out/work, removed at the end."""
    work = out / "work"
    work.mkdir()
    tree = work / "src"
    build_dir = tree / BUILD_SUBDIR
    log_path = out / "build.log"
    try:
        with log_path.open("w") as log:
            log.write(
                f"# oomrace kernel build: recipe {job.recipe.name}, arch {job.arch}\n"
                f"# source: {job.source.identity} ({job.source.tree})\n"
                f"# compiler: {job.compiler}\n# base config: {job.recipe.base_config}\n"
                f"# fragments: {', '.join(str(f) for f in job.fragments) or '-'}\n"
                f"# patches: {', '.join(str(p) for p in job.patches) or '-'}\n"
                f"# cache key: {job.key}\n"
            )
            progress.update("copying source tree (hard links)")
            link_tree(job.source, tree)
            inputs = out / "inputs"
            inputs.mkdir()
            compat = [f.patch.name for f in job.compat if apply_compat(tree, f, log)]
            for i, patch in enumerate(job.patches):
                progress.update(f"applying {patch.name}")
                apply_patch(tree, patch, log)
                shutil.copy2(patch, inputs / f"patch-{i:02d}-{patch.name}")
            for i, frag in enumerate(job.fragments):
                shutil.copy2(frag, inputs / f"fragment-{i:02d}-{frag.name}")
            _tuxmake(job, out, tree, build_dir, log, progress)
        for name in ("vmlinux", "System.map"):
            if (build_dir / name).is_file():
                shutil.copy2(build_dir / name, out / name)
        shutil.copy2(build_dir / job.ab.image_path, out / job.ab.image_name)
        shutil.copy2(build_dir / ".config", out / "config")
        objects = _count_objects(build_dir)
        _objects_hint_file(job.arch).write_text(f"{objects}\n")
        shutil.rmtree(work)
        info = {
            "recipe": job.recipe.name,
            "arch": job.arch,
            "source_identity": job.source.identity,
            "kernel_version": job.source.version,
            "base_config": job.recipe.base_config,
            "fragments": [f.name for f in job.fragments],
            "patches": [p.name for p in job.patches],
            "compat": compat,
            "compiler": job.compiler,
            "cache_key": job.key,
            "objects": objects,
            "build_seconds": round(time.monotonic() - progress.start, 1),
        }
        atomicio.write_json(out / "kernel.json", schema.versioned(info))
        progress.done(f"built {job.ab.image_name}")
    except BaseException as e:
        failed = _failure_dir(job.key)
        if log_path.is_file():
            shutil.copy2(log_path, failed / "build.log")
        if (build_dir / ".config").is_file():
            shutil.copy2(build_dir / ".config", failed / "config")
        progress.done("interrupted" if isinstance(e, KeyboardInterrupt) else "FAILED")
        if isinstance(e, KernelError):
            raise KernelError(f"{e}\n(build log: {failed / 'build.log'})") from None
        raise


def _build_timestamp(epoch: int) -> str:
    """What `uname -v` shows as build date; fixed per source for reproducible builds."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))


def _tuxmake(
    job: _Job, out: Path, tree: Path, build_dir: Path, log: IO[str], progress: _Progress
) -> None:
    """Configure (and check the config), then compile, both through tuxmake."""
    base = job.recipe.base_config
    if Path(base).expanduser().is_file():
        base = str(Path(base).expanduser().resolve())
    jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    common = [
        *job.tux,
        "--runtime=null",
        f"--target-arch={job.ab.tux_arch}",
        "--toolchain=gcc",
        "--wrapper=ccache",
        f"--jobs={jobs or 1}",
        f"--kernel-image={job.ab.image_name}",
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
    ]
    # tuxmake's ccache wrapper takes CCACHE_DIR from the environment (default ~/.ccache)
    # and refuses it as --environment; it sets CCACHE_NOHASHDIR itself.
    env = dict(os.environ, CCACHE_DIR=str(_ccache_dir()))
    tux_out = out / "tuxmake"
    (tux_out / "configure").mkdir(parents=True)
    steps = (("configuring", "config", tux_out / "configure"), ("compiling", "kernel", tux_out))
    for stage, target, outdir in steps:
        argv = [*common, f"--output-dir={outdir}", target]
        expected = _read_hint(job.arch) if target == "kernel" else None
        status = _run_logged(argv, log, env, progress, stage, build_dir, expected)
        if status != 0:
            log.flush()
            raise KernelError(
                f"kernel build failed while {stage} (tuxmake exit status {status}) for recipe "
                f"{job.recipe.name} ({job.arch}); last lines of the log:\n{_tail(Path(log.name))}"
            )
        if target == "config":
            _check_fragments(tree, build_dir / ".config", job.fragments, log)
    # Keep tuxmake's metadata.json and reproducer.sh; its logs repeat our build.log and
    # its artifacts are copied to the top of the entry.
    for name in ("build.log", "build-debug.log", "config", job.ab.image_name):
        for path in (tux_out / name, tux_out / "configure" / name):
            if path.is_file():
                path.unlink()


def _check_fragments(tree: Path, config: Path, fragments: Sequence[Path], log: IO[str]) -> None:
    """Every fragment option must be in the final .config, except options this kernel
    version does not have at all (a fragment serves several versions): those are logged."""
    mismatches = check_config(config.read_text(errors="replace"), fragments)
    missing: list[ConfigMismatch] = []
    if mismatches:
        known = kconfig_symbols(tree)
        missing = [m for m in mismatches if m.option.removeprefix("CONFIG_") not in known]
        mismatches = [m for m in mismatches if m not in missing]
    if mismatches:
        raise config_error(mismatches, config)
    for m in missing:
        log.write(f"# config check: {m.option} ({m.fragment}) does not exist in this kernel\n")
    log.write(f"# config check: all {len(fragments)} fragment(s) applied\n")


_KCONFIG_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$", re.M)


def kconfig_symbols(tree: Path) -> set[str]:
    """Every symbol a Kconfig file of the tree declares (without CONFIG_)."""
    symbols: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d != BUILD_SUBDIR or Path(dirpath) != tree]
        for name in filenames:
            if name.startswith("Kconfig"):
                text = Path(dirpath, name).read_text(errors="replace")
                symbols.update(_KCONFIG_SYMBOL.findall(text))
    return symbols


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
