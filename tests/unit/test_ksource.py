"""Kernel sources without compiling: tarballs (path, name, URL), git refs, compat fixes,
versions, options a kernel does not have."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import KernelError, UsageError
from harness.kernel.build import recipes, tuxmake
from harness.kernel.build.source import SHARED_SOURCES, SOURCES_ENV, resolve_source
from harness.kernel.build.tree import COMPAT_DIR, apply_compat, compat_fixes
from harness.kernel.version import image_release, older_than, version_tuple

MAKEFILE = "VERSION = 4\nPATCHLEVEL = 14\nSUBLEVEL = 2\nEXTRAVERSION =\n"


def preimage(patch: Path) -> dict[str, str]:
    """The files a patch expects, rebuilt from its context and removed lines."""
    files: dict[str, list[str]] = {}
    current: list[str] = []
    for line in patch.read_text().splitlines():
        if line.startswith("--- a/"):
            current = files.setdefault(line[6:], [])
        elif line.startswith((" ", "-")) and not line.startswith("---") and files:
            current.append(line[1:])
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))


def make_tree(root: Path, version: str = "4.14.2") -> Path:
    major, minor, sub = version.split(".")
    root.mkdir(parents=True)
    (root / "Makefile").write_text(
        f"VERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {sub}\nEXTRAVERSION =\n"
    )
    (root / "Kconfig").write_text("config FOO\n\tbool \"foo\"\nmenuconfig BAR\n\tbool\n")
    for name, text in preimage(COMPAT_DIR / "dtc-extern-yylloc.patch").items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def make_tarball(tmp_path: Path, name: str = "linux-4.14.2.tar.gz") -> tuple[Path, str]:
    tree = make_tree(tmp_path / "src" / "linux-4.14.2")
    tarball = tmp_path / name
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname="linux-4.14.2")
    return tarball, hashlib.sha256(tarball.read_bytes()).hexdigest()


def test_tarball_by_path_is_unpacked_once_and_named_by_content(tmp_path: Path) -> None:
    tarball, sha = make_tarball(tmp_path)
    source = resolve_source(str(tarball), sha)
    assert source.kind == "tarball" and source.identity == f"tarball:{sha}"
    assert source.version == "4.14.2" and (source.tree / "Makefile").is_file()
    again = resolve_source(str(tarball))  # no sha256 given: still its content
    assert again.tree == source.tree and again.identity == source.identity


def test_tarball_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    tarball, _ = make_tarball(tmp_path)
    with pytest.raises(KernelError, match=r"sha256 is .*expected 00"):
        resolve_source(str(tarball), "00" * 32)


def test_tarball_by_name_searches_the_source_path(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tarball, sha = make_tarball(tmp_path)
    monkeypatch.setenv(SOURCES_ENV, f"{tmp_path / 'nowhere'}:{tmp_path}")
    assert resolve_source(tarball.name, sha).identity == f"tarball:{sha}"


def test_a_missing_source_says_where_it_looked(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SOURCES_ENV, str(tmp_path / "here"))
    with pytest.raises(UsageError) as e:
        resolve_source("linux-9.9.tar.xz")
    message = str(e.value)
    assert "\n" not in message
    assert str(tmp_path / "here") in message and str(SHARED_SOURCES) in message
    assert SOURCES_ENV in message


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server (127.0.0.1) serving a folder: a URL source without a network."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_url_source_is_downloaded_checked_and_cached(tmp_path: Path,
                                                     http_folder: tuple[str, Path]) -> None:
    base, folder = http_folder
    tarball, sha = make_tarball(tmp_path)
    (folder / tarball.name).write_bytes(tarball.read_bytes())
    url = f"{base}/{tarball.name}"
    source = resolve_source(url, sha)
    assert source.identity == f"tarball:{sha}" and source.version == "4.14.2"
    (folder / tarball.name).unlink()  # a second use needs no server
    assert resolve_source(url, sha).tree == source.tree
    with pytest.raises(UsageError, match="needs its sha256"):
        resolve_source(url)
    with pytest.raises(KernelError, match="cannot download"):
        resolve_source(f"{base}/missing.tar.gz", "11" * 32)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_git_ref_source_exports_that_commit_and_leaves_the_repo_alone(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "linux")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "4.14.2")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "Makefile").write_text(MAKEFILE.replace("SUBLEVEL = 2", "SUBLEVEL = 3"))
    _git(repo, "commit", "-qam", "4.14.3")
    (repo / "dirty").write_text("uncommitted\n")
    source = resolve_source(str(repo), ref=first)
    assert source.identity == f"git:{first}" and source.version == "4.14.2"
    assert not (source.tree / "dirty").exists()
    assert _git(repo, "status", "--porcelain") == "?? dirty"
    assert _git(repo, "rev-parse", "HEAD") != first  # HEAD untouched
    with pytest.raises(UsageError, match="has no commit 'nope'"):
        resolve_source(str(repo), ref="nope")


def test_compat_fix_is_chosen_by_version_and_applied_to_the_copy_only(tmp_path: Path) -> None:
    assert [f.patch.name for f in compat_fixes("4.14.2")] == ["dtc-extern-yylloc.patch"]
    assert compat_fixes("6.1.0") == []
    tree = make_tree(tmp_path / "tree")
    log = io.StringIO()
    fix = compat_fixes("4.14.2")[0]
    assert apply_compat(tree, fix, log)
    lexer = tree / "scripts" / "dtc" / "dtc-lexer.l"
    assert "extern YYLTYPE yylloc;" in lexer.read_text()
    assert not apply_compat(tree, fix, log)  # already there: skipped, not an error
    assert "skipped" in log.getvalue()


def test_options_this_kernel_lacks_are_logged_not_errors(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    frag = tmp_path / "frag.config"
    frag.write_text("CONFIG_FOO=y\nCONFIG_NOT_IN_THIS_KERNEL=y\n")
    config = tmp_path / ".config"
    config.write_text("CONFIG_FOO=y\n")
    log = io.StringIO()
    tuxmake.check_fragments(tree, config, [frag], log)
    assert "CONFIG_NOT_IN_THIS_KERNEL (frag.config) does not exist in this kernel" in log.getvalue()
    config.write_text("# CONFIG_FOO is not set\n")  # known to the tree, but off: an error
    with pytest.raises(KernelError, match="CONFIG_FOO"):
        tuxmake.check_fragments(tree, config, [frag], log)


def test_version_helpers(tmp_path: Path) -> None:
    assert version_tuple("4.14.2") == (4, 14, 2)
    assert version_tuple("6.1.0-56-amd64") == (6, 1, 0)
    assert version_tuple("5.15") == (5, 15, 0)
    assert older_than("4.14.2", "5.15") and not older_than("6.1", "5.15")
    assert not older_than(None, "5.15")
    with pytest.raises(UsageError):
        version_tuple("vmlinuz")
    image = tmp_path / "Image"
    image.write_bytes(b"\0" * 0x40 + b"junk Linux version 4.14.2 (oomrace@oomrace) #1 SMP\0")
    assert image_release(image) == "4.14.2"
    bz = bytearray(0x400)
    bz[0x202:0x206] = b"HdrS"
    bz[0x20E:0x210] = (0x100).to_bytes(2, "little")
    bz[0x300:0x320] = b"6.1.0-56-amd64 (debian-kernel@)\0"
    image.write_bytes(bytes(bz))
    assert image_release(image) == "6.1.0-56-amd64"
    image.write_bytes(b"nothing here")
    assert image_release(image) is None


def test_cli_recipe_from_a_source_keeps_the_config_and_adds_patches(tmp_path: Path) -> None:
    patch = tmp_path / "mine.patch"
    patch.write_text("--- a/x\n+++ b/x\n")
    recipe = recipes.recipe_for_cli(None, "/src/linux", "v4.14.2", [patch], None, None)
    base = recipes.load_recipe("v4.14.2")
    assert recipe.source == "/src/linux" and recipe.sha256 is None
    assert recipe.fragments == base.fragments and recipe.cmdline == base.cmdline
    assert recipe.patches == (str(patch.resolve()),)
    named = recipes.recipe_for_cli("v4.14.2+mm-users-fix", None, "v6.1", [patch], None, None)
    assert named.patches == ("4.14/mm-users-fix.patch", str(patch.resolve()))
    with pytest.raises(UsageError, match="--recipe NAME or --source"):
        recipes.recipe_for_cli(None, None, "v6.1", [], None, None)
    with pytest.raises(UsageError, match="does not exist"):
        recipes.recipe_for_cli("v6.1", None, "v6.1", [tmp_path / "nope.patch"], None, None)


def test_seed_kernel_recipes_and_their_patches() -> None:
    names = recipes.recipe_names()
    for name in ("v4.14.2", "v4.14.2+gather-each-vma", "v4.14.2+mm-users-fix",
                 "v4.14.2+lazy-flag-fix"):
        assert name in names
        recipe = recipes.load_recipe(name)
        assert recipe.source == "linux-4.14.2.tar.xz" and recipe.sha256
        assert "page_poison=1" in recipe.cmdline
        for patch in recipe.patch_paths():
            assert patch.is_file(), patch
    assert recipes.load_recipe("v4.14.2").patches == ()
