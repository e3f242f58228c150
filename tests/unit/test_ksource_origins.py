"""A tarball with more than one known-good origin (issue 22): a local copy wins, by any of
its known sha256; with none, the publisher's URL (here a kernel.org-named tarball served on
127.0.0.1) is fetched and checked by sha256; a wrong sha256 is refused; with neither, the
error names the URL, the sha256 and the folder to put the file in."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import KernelError, UsageError
from harness.kernel.build import recipes
from harness.kernel.build import source as ksource

from .test_ksource import (
    MAKEFILE,
    http_folder,  # noqa: F401 - the fixture
)

NAME = "linux-4.14.2.tar.xz"


@pytest.fixture(autouse=True)
def _no_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private cache and search path: ../shared's real tarball must not be found."""
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))
    local = tmp_path / "sources"
    local.mkdir()
    monkeypatch.setenv(ksource.SOURCES_ENV, str(local))
    monkeypatch.setattr(ksource, "SHARED_SOURCES", tmp_path / "no-shared")
    yield local


def _tarball(path: Path, extra: str = "") -> str:
    """A kernel-like tree as an xz tarball at `path`; its sha256."""
    with tarfile.open(path, "w:xz") as tar:
        for name, text in (("Makefile", MAKEFILE), ("Kconfig", extra)):
            info = tarfile.TarInfo(f"linux-4.14.2/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_url_is_used_when_there_is_no_local_copy(
        http_folder: tuple[str, Path], _no_shared: Path) -> None:  # noqa: F811
    base, www = http_folder
    published = _tarball(www / NAME)
    url = f"{base}/{NAME}"
    source = ksource.resolve_source(NAME, published, url=url, also_sha256=("ab" * 32,))
    assert source.origin == url and source.identity == f"tarball:{published}"
    assert source.version == "4.14.2"
    (www / NAME).unlink()  # fetched once: the cache answers from now on
    assert ksource.resolve_source(NAME, published, url=url).origin == url


def test_a_local_copy_wins_by_any_known_sha256(
        http_folder: tuple[str, Path], _no_shared: Path) -> None:  # noqa: F811
    base, www = http_folder
    published = _tarball(www / NAME)
    vendor = _tarball(_no_shared / NAME, extra="# our vendor copy\n")
    source = ksource.resolve_source(NAME, published, url=f"{base}/{NAME}",
                                    also_sha256=(vendor,))
    assert source.origin == f"local file {_no_shared / NAME}"
    assert source.identity == f"tarball:{vendor}"
    with pytest.raises(KernelError, match="expected one of"):  # a copy nobody vouches for
        ksource.resolve_source(NAME, published, url=f"{base}/{NAME}", also_sha256=("0" * 64,))


def test_a_download_with_the_wrong_sha256_is_refused(
        http_folder: tuple[str, Path], tmp_path: Path) -> None:  # noqa: F811
    base, www = http_folder
    _tarball(www / NAME)
    with pytest.raises(KernelError, match=f"sha256 is .*, expected {'1' * 64}"):
        ksource.resolve_source(NAME, "1" * 64, url=f"{base}/{NAME}")
    assert not list((tmp_path / "cache").glob("downloads/1111*"))  # nothing kept


def test_with_neither_the_error_says_url_sha256_and_folder(
        http_folder: tuple[str, Path], _no_shared: Path) -> None:  # noqa: F811
    base, _ = http_folder
    url = f"{base}/{NAME}"  # the server answers 404: as good as no network
    with pytest.raises(UsageError) as e:
        ksource.resolve_source(NAME, "2" * 64, url=url)
    text = str(e.value)
    assert "\n" not in text and url in text and "2" * 64 in text and str(_no_shared) in text


def test_the_4_14_2_recipes_know_both_copies() -> None:
    recipe = recipes.load_recipe("v4.14.2+gather-each-vma")
    assert recipe.sha256 == "e92690620a4e4811c6b37b2f1b6c9b32a1dde40aa12be6527c8dc215fb27464c"
    assert recipe.url == "https://cdn.kernel.org/pub/linux/kernel/v4.x/linux-4.14.2.tar.xz"
    assert recipe.also_sha256 == (
        "d30468efc9e2972f7fa5c55516fb786adda333988e0761eca6115cef6644bb65",)


def test_a_url_without_its_sha256_is_a_recipe_error(tmp_path: Path) -> None:
    bad = tmp_path / "k.toml"
    bad.write_text(f'[recipe.x]\nsource = "{NAME}"\nurl = "https://example.org/{NAME}"\n')
    with pytest.raises(UsageError, match="url needs the sha256"):
        recipes.load_recipe("x", bad)


def test_bootstraps_last_line_knows_whether_the_seed_tarball_can_be_had(
        http_folder: tuple[str, Path], _no_shared: Path) -> None:  # noqa: F811
    base, www = http_folder
    url = f"{base}/{NAME}"
    missing = ksource.missing_tarball(NAME, "3" * 64, url)
    assert missing is not None and url in missing and "3" * 64 in missing
    assert str(_no_shared) in missing
    _tarball(www / NAME)
    assert ksource.missing_tarball(NAME, "3" * 64, url) is None  # the URL answers
    (www / NAME).rename(_no_shared / NAME)
    assert ksource.missing_tarball(NAME, "3" * 64, None) is None  # a local copy
