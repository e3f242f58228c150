"""A killed builder's temporary directory is removed by the next cache.entry() of its
kind once no live process builds that key (issue 10). No QEMU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cache

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))
    return cache.cache_root()


def _fill(tmp: Path) -> None:
    (tmp / "data").write_text("ok")


def _leftover(kind_dir: Path, name: str) -> Path:
    path = kind_dir / name
    (path / "work" / "deep").mkdir(parents=True)
    (path / "work" / "deep" / "object.o").write_text("half built")
    return path


def test_the_temporary_directory_names_its_key_and_builder(root: Path) -> None:
    seen: list[str] = []
    cache.entry("k", "key1", lambda tmp: seen.append(tmp.name) or _fill(tmp))
    assert seen[0].startswith(f".key1.tmp-{os.getpid()}-")


def test_a_dead_builders_directory_is_removed_by_the_next_entry_of_the_kind(root: Path) -> None:
    kind = root / "k"
    kind.mkdir()
    dead = _leftover(kind, ".other.tmp-4194999-0123abcd")  # another key, builder gone
    legacy = _leftover(kind, ".old.abc_1234")  # tempfile.mkdtemp's name, before pids
    aside = _leftover(kind, ".gone.stale.12345")  # a corrupt entry moved aside
    path = cache.entry("k", "key1", _fill)
    assert (path / "data").read_text() == "ok"
    assert not dead.exists() and not legacy.exists() and not aside.exists()


def test_a_cache_hit_cleans_up_too(root: Path) -> None:
    cache.entry("k", "key1", _fill)
    dead = _leftover(root / "k", ".key2.tmp-4194999-0123abcd")
    assert cache.entry("k", "key1", lambda tmp: pytest.fail("a hit must not rebuild"))
    assert not dead.exists()


def test_a_running_build_keeps_its_directory(root: Path) -> None:
    kind = root / "k"
    kind.mkdir()
    busy = _leftover(kind, f".busy.tmp-{os.getpid()}-0123abcd")
    with cache.locked(kind / ".busy.lock"):  # its builder holds the key's lock
        cache.entry("k", "key1", _fill)
        assert busy.exists()
    cache.entry("k", "key1", _fill)  # the builder is gone now
    assert not busy.exists()


def test_entries_and_other_files_are_left_alone(root: Path) -> None:
    kind = root / "k"
    cache.entry("k", "abcdefgh", _fill)  # a key that looks like mkdtemp's 8 characters
    (kind / ".objects-x86_64.txt").write_text("1234\n")
    (kind / "failed").mkdir()
    (kind / ".file.tmp-1-0123abcd").write_text("a file, not a build directory")
    cache.entry("k", "key1", _fill)
    names = sorted(p.name for p in kind.iterdir())
    assert names == [".abcdefgh.lock", ".file.tmp-1-0123abcd", ".key1.lock",
                     ".objects-x86_64.txt", "abcdefgh", "failed", "key1"]


def test_a_builder_killed_mid_build_leaves_a_usable_cache(root: Path) -> None:
    # A real builder process, SIGKILLed while it builds (no cleanup of its own runs).
    code = ("import time\nfrom pathlib import Path\nfrom harness import cache\n"
            "def build(tmp):\n"
            "    (tmp / 'half').write_text('x')\n"
            "    print(tmp, flush=True)\n"
            "    time.sleep(300)\n"
            "cache.entry('k', 'slow', build)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    builder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               text=True, env=env)
    assert builder.stdout is not None
    tmp = Path(builder.stdout.readline().strip())
    assert tmp.is_dir() and f".tmp-{builder.pid}-" in tmp.name
    cache.entry("k", "other", _fill)
    assert tmp.is_dir(), "kept while its builder lives"
    builder.send_signal(signal.SIGKILL)
    builder.wait(10)
    path = cache.entry("k", "slow", _fill)
    assert (path / "data").read_text() == "ok"
    assert not tmp.exists()
    assert sorted(p.name for p in (root / "k").iterdir() if p.is_dir()) == ["other", "slow"]


def test_a_build_cut_by_an_interrupt_leaves_nothing(root: Path) -> None:
    def build(tmp: Path) -> None:
        _fill(tmp)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.entry("k", "key1", build)
    assert [p.name for p in (root / "k").iterdir()] == [".key1.lock"]
