"""Kernel sources: where a tree comes from and what identifies it.

A source is read, never written. It can be Debian's ``linux-source-X.Y`` package, a
tarball (a path, a name found in the source search path, or a URL; its sha256 checked),
a git repository at a ref, or a tree given by path. Tarballs and git refs are unpacked
once into ``cache_root()/sources``, keyed by their content (sha256, commit id). Builds
work on a copy of the tree (build.tree), never on the tree itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ... import cache, debian, proc
from ...errors import KernelError, MissingToolError, UsageError
from ...paths import PROJECT_ROOT

log = logging.getLogger(__name__)

DEBIAN_PREFIX = "debian:"
TARBALL_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")
DOWNLOADED = "tarball"  # a download's file name in the cache (tar reads any compression)
SOURCES_ENV = "OOMRACE_KERNEL_SOURCES"
"""Folders (separated by ':') searched for a source given by file name only."""
SHARED_SOURCES = PROJECT_ROOT.parent / "shared" / "linux"
"""Where the project's CI and its developers keep the kernel tarballs the recipes name."""


# --- sources -------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A kernel tree we may read but never write, and what identifies its contents."""

    tree: Path
    identity: str
    kind: Literal["debian", "git", "tree", "tarball"]
    version: str  # from the Makefile, e.g. 6.1.192
    timestamp: int  # for KBUILD_BUILD_TIMESTAMP (reproducible builds)
    git_files: tuple[str, ...] | None = None  # for git trees: what the copy should hold
    # A git working tree given by path: the repository, its HEAD, and the paths whose
    # content differs from HEAD (modified, added, deleted, untracked); an incremental
    # build checks `commit` out in a clone of its own and copies these over it.
    repo: Path | None = None
    commit: str | None = None
    dirty: tuple[str, ...] = ()


SOURCE_TIMEOUT = 3600.0
"""Seconds a source command (git archive, tar, cp of a whole tree) may take on a slow disk."""


def run_text(argv: Sequence[str], cwd: Path | None = None, check: bool = True) -> str:
    try:
        return proc.run(argv, cwd=cwd, check=check, timeout=SOURCE_TIMEOUT).stdout
    except proc.CommandError as e:  # a kernel's source could not be had: a KernelError
        raise KernelError(str(e)) from e


def makefile_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION] from a kernel tree's top Makefile."""
    makefile = tree / "Makefile"
    try:
        text = makefile.read_text(errors="replace")
    except FileNotFoundError:
        raise UsageError(f"{tree} is not a kernel source tree (no Makefile)") from None
    return _version_of(text, (tree / "Kconfig").is_file(), str(tree))


def _version_of(makefile: str, has_kconfig: bool, where: str) -> str:
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=\s*(\S*)\s*$", makefile, re.M)
        fields[key] = m.group(1) if m else ""
    if not fields["VERSION"] or not has_kconfig:
        raise UsageError(f"{where} is not a kernel source tree (no VERSION in its Makefile)")
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    if fields["SUBLEVEL"]:
        version += f".{fields['SUBLEVEL']}"
    return version + fields["EXTRAVERSION"]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def debian_source(package: str) -> Source:
    """Debian's linux-source-X.Y tarball, installed if missing, unpacked once into the cache."""
    version = debian.installed_version(package)
    if version is None:
        debian.install(package, "kernel source tarball", timeout=SOURCE_TIMEOUT)
        version = debian.installed_version(package)
        if version is None:
            raise KernelError(f"apt-get reported success but {package} is not installed")
    listing = run_text(["dpkg", "-L", package])
    tarballs = [Path(p) for p in listing.splitlines() if re.search(r"\.tar\.(xz|bz2|gz)$", p)]
    if not tarballs or not tarballs[0].is_file():
        raise KernelError(
            f"{package} {version} is installed but its source tarball is missing; "
            f"reinstall it with: sudo apt-get install --reinstall {package}"
        )
    tarball = tarballs[0]
    top = re.sub(r"\.tar\.\w+$", "", tarball.name)

    def unpack(tmp: Path) -> None:
        if shutil.which("xz") is None and tarball.suffix == ".xz":
            raise MissingToolError("xz", "xz-utils")
        log.info("unpacking %s into the cache", tarball)
        run_text(["tar", "-xf", str(tarball), "-C", str(tmp)])
        if not (tmp / top / "Makefile").is_file():
            raise KernelError(f"{tarball} did not unpack to {top}/")

    entry = cache.entry("sources", _safe_name(f"debian-{package}-{version}"), unpack)
    return _unpacked(entry / top, f"debian:{package}={version}", "debian")


def _unpacked(tree: Path, identity: str, kind: Literal["debian", "tarball"]) -> Source:
    """A tree unpacked into the cache; its Makefile's mtime stands for the release date."""
    return Source(
        tree=tree,
        identity=identity,
        kind=kind,
        version=makefile_version(tree),
        timestamp=int((tree / "Makefile").stat().st_mtime),
    )


def _git_toplevel(path: Path) -> Path | None:
    if shutil.which("git") is None:
        return None
    done = proc.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], check=False)
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


READ_ONLY_GIT = {"GIT_OPTIONAL_LOCKS": "0"}
"""git status and diff in the user's repository must not refresh (write) its index."""


def _git_read(tree: Path, *args: str) -> str:
    try:
        return proc.run(["git", "-C", str(tree), *args], timeout=SOURCE_TIMEOUT,
                        env=dict(os.environ, **READ_ONLY_GIT)).stdout
    except proc.CommandError as e:
        raise KernelError(str(e)) from e


def status_paths(porcelain_z: str) -> tuple[str, ...]:
    """The paths of `git status --porcelain -z` output; a rename gives both of its paths."""
    paths: list[str] = []
    fields = porcelain_z.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # the original path follows as its own field
            if i < len(fields) and fields[i]:
                paths.append(fields[i])
            i += 1
    return tuple(sorted(set(paths)))


def git_source(tree: Path) -> Source:
    """A git checkout: HEAD, plus a hash of uncommitted changes and untracked files."""
    head = run_text(["git", "-C", str(tree), "rev-parse", "HEAD"]).strip()
    timestamp = int(run_text(["git", "-C", str(tree), "log", "-1", "--format=%ct", "HEAD"]).strip())
    files_out = run_text(
        ["git", "-C", str(tree), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    )
    files = tuple(sorted({f for f in files_out.split("\0") if f}))
    status = _git_read(tree, "status", "--porcelain", "-z", "--untracked-files=all")
    identity = f"git:{head}"
    if status.strip("\0"):
        h = hashlib.sha256()
        h.update(
            subprocess.run(
                ["git", "-C", str(tree), "diff", "HEAD", "--binary"],
                capture_output=True,
                check=True,
                env=dict(os.environ, **READ_ONLY_GIT),
            ).stdout
        )
        untracked = run_text(
            ["git", "-C", str(tree), "ls-files", "-z", "--others", "--exclude-standard"]
        )
        for rel in sorted(f for f in untracked.split("\0") if f):
            p = tree / rel
            h.update(rel.encode() + b"\0")
            if p.is_file() and not p.is_symlink():
                h.update(cache.file_digest(p).encode())
        identity += f"+dirty.{h.hexdigest()[:16]}"
    return Source(
        tree=tree,
        identity=identity,
        kind="git",
        version=makefile_version(tree),
        timestamp=timestamp,
        git_files=files,
        repo=tree,
        commit=head,
        dirty=status_paths(status),
    )


def _tree_fingerprint(tree: Path) -> str:
    """Hash of (path, size, mtime) of every file: cheap, catches edits in place."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            h.update(f"{os.path.relpath(p, tree)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def plain_source(tree: Path) -> Source:
    version = makefile_version(tree)
    return Source(
        tree=tree,
        identity=f"tree:{version}:{cache.digest(str(tree))}:{_tree_fingerprint(tree)}",
        kind="tree",
        version=version,
        timestamp=int((tree / "Makefile").stat().st_mtime),
    )


def resolve_source(spec: str | Path, sha256: str | None = None, ref: str | None = None) -> Source:
    """Any kind of source from its spec.

    - ``debian:<package>``: Debian's source package;
    - a URL, or a path or bare file name ending in .tar.xz/.tar.gz/...: a tarball
      (``sha256`` checked when given, required for a URL);
    - a directory: with ``ref``, that commit of its git repository; without, the
      tree as it is (a git checkout with its uncommitted changes, or any tree).
    """
    text = str(spec)
    if text.startswith(DEBIAN_PREFIX):
        return debian_source(text[len(DEBIAN_PREFIX) :])
    if _is_url(text):
        return tarball_source(download(text, sha256), sha256, origin=text)
    if text.endswith(TARBALL_SUFFIXES):
        return tarball_source(find_source_file(text), sha256)
    tree = Path(text).expanduser().resolve()
    if not tree.is_dir():
        raise UsageError(
            f"kernel source {tree} is not a directory; give a kernel tree, a git "
            "repository, a tarball (.tar.xz, .tar.gz, ...) or a URL"
        )
    if ref is not None:
        return git_ref_source(tree, ref)
    makefile_version(tree)  # a clear error early if it is not a kernel tree
    if _git_toplevel(tree) == tree:
        return git_source(tree)
    refuse_built_in_place(tree)
    return plain_source(tree)


IN_TREE_BUILD_LEFTOVERS = (".config", "include/config", "include/generated")
"""What an in-tree build leaves; kbuild then refuses O= builds ("run make mrproper")."""


def refuse_built_in_place(tree: Path) -> None:
    """A one-line error when `tree` was built in place: we build it with O= and never
    write into it, so we never run `make mrproper` there ourselves."""
    for leftover in IN_TREE_BUILD_LEFTOVERS:
        if (tree / leftover).exists():
            raise UsageError(
                f"{tree} was built in place ({leftover} exists), so kbuild refuses to build "
                f"it with O=; run `make mrproper` in it yourself (oomrace never writes "
                f"there), or give a git checkout of it"
            )


def source_search_path() -> list[Path]:
    """Folders searched for a source named by file name alone: $OOMRACE_KERNEL_SOURCES,
    then the shared folder beside the project (where CI keeps the 4.14.2 tarball)."""
    extra = [Path(p).expanduser() for p in os.environ.get(SOURCES_ENV, "").split(":") if p]
    return [*extra, SHARED_SOURCES]


def find_source_file(name: str) -> Path:
    """A tarball by path, or by bare name in the search path; one-line error otherwise."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if path.name != name:  # a path with folders: look only there
        raise UsageError(f"kernel source {path} does not exist")
    places = source_search_path()
    for folder in places:
        if (folder / name).is_file():
            return (folder / name).resolve()
    where = ", ".join(str(p) for p in places)
    raise UsageError(
        f"kernel source {name} not found (looked in {where}); put it there or set "
        f"{SOURCES_ENV}=DIR to the folder that holds it"
    )


def _is_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in ("http", "https", "file")


def _check_sha256(path: Path, sha256: str | None, origin: str) -> str:
    """The file's sha256; KernelError when it is not the expected one."""
    actual = cache.file_digest(path)
    if sha256 is not None and actual != sha256.lower():
        raise KernelError(
            f"{origin}: sha256 is {actual}, expected {sha256}; the file is damaged or "
            "not the one the recipe names"
        )
    return actual


def download(url: str, sha256: str | None) -> Path:
    """A tarball from a URL, fetched once into the cache under its sha256."""
    if sha256 is None:
        raise UsageError(f"{url}: a source fetched from a URL needs its sha256 (--sha256)")
    name = Path(urllib.parse.urlparse(url).path).name or "source.tar"
    if not name.endswith(TARBALL_SUFFIXES):
        raise UsageError(f"{url}: not a tarball (.tar.xz, .tar.gz, .tar.bz2 or .tar)")

    def fetch(tmp: Path) -> None:
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as response, \
                    (tmp / DOWNLOADED).open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as e:
            raise KernelError(f"cannot download {url}: {e}") from None
        _check_sha256(tmp / DOWNLOADED, sha256, url)

    # Named by content: any URL with the same sha256 is the same tarball.
    return cache.entry("downloads", sha256.lower(), fetch) / DOWNLOADED


def tarball_source(tarball: Path, sha256: str | None, origin: str | None = None) -> Source:
    """A tarball unpacked once into the cache, keyed by its sha256."""
    digest = _check_sha256(tarball, sha256, origin or str(tarball))

    def unpack(tmp: Path) -> None:
        if (origin or tarball.name).endswith(".xz") and shutil.which("xz") is None:
            raise MissingToolError("xz", "xz-utils")
        log.info("unpacking %s into the cache", tarball)
        run_text(["tar", "-xf", str(tarball), "-C", str(tmp), "--no-same-owner"])

    entry = cache.entry("sources", f"tarball-{digest[:32]}", unpack)
    tops = [p for p in entry.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise KernelError(f"{tarball} does not unpack to a single folder ({entry})")
    return _unpacked(tops[0], f"tarball:{digest}", "tarball")


def git_commit_source(repo: Path, commit: str) -> Source:
    """One commit of a git repository for an incremental build: read from git's objects
    (never the working tree, which a bisect leaves where the user had it), built in the
    build directory's own clone. `tree` is the repository only for messages."""
    where = f"{repo} at {commit[:12]}"
    makefile = _git_read(repo, "show", f"{commit}:Makefile")
    has_kconfig = proc.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}:Kconfig"],
                           check=False).returncode == 0
    timestamp = int(_git_read(repo, "log", "-1", "--format=%ct", commit).strip())
    return Source(tree=repo, identity=f"git:{commit}", kind="git",
                  version=_version_of(makefile, has_kconfig, where), timestamp=timestamp,
                  repo=repo, commit=commit)


def git_ref_source(repo: Path, ref: str) -> Source:
    """One commit of a git repository, exported once into the cache (`git archive`):
    the user's working tree, index and HEAD are never touched."""
    if _git_toplevel(repo) is None:
        raise UsageError(f"{repo} is not a git repository, so it has no ref {ref!r}")
    done = proc.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        check=False,
    )
    commit = done.stdout.strip()
    if done.returncode != 0 or not commit:
        raise UsageError(f"{repo} has no commit {ref!r}; check the ref with `git log {ref}`")
    timestamp = int(run_text(["git", "-C", str(repo), "log", "-1", "--format=%ct", commit]).strip())

    def export(tmp: Path) -> None:
        archive = tmp / "src.tar"
        run_text(["git", "-C", str(repo), "archive", "--format=tar", "-o", str(archive), commit])
        (tmp / "src").mkdir()
        run_text(["tar", "-xf", str(archive), "-C", str(tmp / "src")])
        archive.unlink()

    tree = cache.entry("sources", f"git-{commit}", export) / "src"
    return Source(
        tree=tree,
        identity=f"git:{commit}",
        kind="git",
        version=makefile_version(tree),
        timestamp=timestamp,
    )
