"""Every cache hit is checked against the entry's manifest (issue 10): a damaged entry
is rebuilt, never used; an entry from before manifests is sealed on its first hit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from harness import cache


@pytest.fixture(autouse=True)
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))
    return cache.cache_root()


class Builder:
    """Counts its builds; writes an image and a record like a kernel entry."""

    def __init__(self) -> None:
        self.builds = 0

    def __call__(self, tmp: Path) -> None:
        self.builds += 1
        (tmp / "sub").mkdir()
        (tmp / "Image").write_bytes(b"kernel" * 1000)
        (tmp / "sub" / "config").write_text("CONFIG_X=y\n")


def test_a_new_entry_is_sealed_and_a_hit_does_not_rebuild() -> None:
    build = Builder()
    first = cache.entry("k", "key", build)
    manifest = json.loads((first / cache.MANIFEST).read_text())
    assert manifest["schema_version"] == cache.MANIFEST_SCHEMA
    assert manifest["sizes"] == {"Image": 6000, "sub/config": 11}
    assert set(manifest["sha256"]) == {"Image", "sub/config"}
    assert cache.entry("k", "key", build) == first and build.builds == 1


@pytest.mark.parametrize("harm", ["truncate", "delete", "same-size edit", "symlink"])
def test_a_damaged_entry_is_rebuilt(harm: str, caplog: pytest.LogCaptureFixture) -> None:
    build = Builder()
    entry = cache.entry("k", "key", build)
    image = entry / "Image"
    if harm == "truncate":
        image.write_bytes(b"kern")
    elif harm == "delete":
        (entry / "sub" / "config").unlink()
    elif harm == "same-size edit":
        image.write_bytes(b"KERNEL" * 1000)
    else:
        image.unlink()
        image.symlink_to("/etc/hostname")
    with caplog.at_level(logging.WARNING):
        again = cache.entry("k", "key", build)
    assert build.builds == 2 and again == entry
    assert (again / "Image").read_bytes() == b"kernel" * 1000
    assert "damaged" in caplog.text and "rebuilding" in caplog.text
    assert cache.damage(again) is None


def test_files_added_after_sealing_are_allowed() -> None:
    build = Builder()
    entry = cache.entry("k", "key", build)
    (entry / "objects.pack").write_text("a git object, a later log")
    assert cache.entry("k", "key", build) == entry and build.builds == 1


def test_an_entry_from_before_manifests_is_sealed_on_its_first_hit(root: Path) -> None:
    legacy = root / "k" / "old"
    legacy.mkdir(parents=True)
    (legacy / "Image").write_text("built long ago")
    build = Builder()
    assert cache.entry("k", "old", build) == legacy and build.builds == 0
    assert cache.damage(legacy) is None
    (legacy / "Image").write_text("cut")  # damage from now on is caught
    cache.entry("k", "old", build)
    assert build.builds == 1


def test_a_large_entry_is_checked_by_size_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "HASH_LIMIT_BYTES", 100)  # a source tree, in small
    build = Builder()
    entry = cache.entry("k", "key", build)
    assert "sha256" not in json.loads((entry / cache.MANIFEST).read_text())
    (entry / "Image").write_bytes(b"KERNEL" * 1000)  # same size: not worth a hash a hit
    assert cache.entry("k", "key", build) == entry and build.builds == 1
    (entry / "Image").write_bytes(b"K")
    cache.entry("k", "key", build)
    assert build.builds == 2


@pytest.mark.parametrize("text", ["", "[]", '{"schema_version": 99, "sizes": {}}',
                                  '{"schema_version": 1, "sizes": []}'])
def test_a_corrupt_manifest_means_a_rebuild(text: str) -> None:
    build = Builder()
    entry = cache.entry("k", "key", build)
    (entry / cache.MANIFEST).write_text(text)
    assert cache.damage(entry) is not None
    cache.entry("k", "key", build)
    assert build.builds == 2 and cache.damage(entry) is None
