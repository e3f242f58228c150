"""The known-bug corpus on real kernels (`oomrace bugs`).

CI tier: CVE-2018-18281 (mremap's late TLB flush) on 4.14.2 x86_64, caught through a
stale read of a freed page and clean on the fix recipe. `full`: every ready entry on
every arch, with three bug runs each for a median time to the first detection.

The 4.14.2 tarball comes from ../shared/linux; without it these tests skip, saying so,
except in CI, where it must be there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import bugs

from .test_seed_kernel import _seed_source, oomrace

pytestmark = [pytest.mark.guest, pytest.mark.kernel_build, pytest.mark.slow]


@pytest.mark.timeout(1800)
def test_mremap_stale_read_is_caught_on_4_14_2_and_the_fix_is_clean(tmp_path: Path) -> None:
    _seed_source()
    out = tmp_path / "bugs.json"
    proc = oomrace("bugs", "CVE-2018-18281", "--arch", "x86_64", "--bug-seconds", "40",
                   "--fix-seconds", "30", "--artifacts", str(tmp_path), "--json", str(out),
                   timeout=1700)
    (row,) = json.loads(out.read_text())["rows"]
    assert row["verdict"] == "caught, fix clean", proc.stdout
    assert row["detected"] >= 1 and row["fix_clean"] == row["fix_trials"] >= 2, proc.stdout
    assert "reader record (page_poison)" in row["evidence"] or "reader record" in \
        row["evidence"], proc.stdout
    assert proc.returncode == 0, proc.stderr
    # Provenance: each stale read names the address, its file page, what was read, and
    # how long after the punch that freed it.
    result = json.loads(next(tmp_path.glob("*/CVE-2018-18281/x86_64/bug-1/result.json"))
                        .read_text())
    record = result["workload"]["corruptions"][0]
    assert record["source"] == "reader" and record["evidence"] in (
        "page_poison", "checker_page", "other_file_page", "unknown_owner", "zero_after_punch")
    assert record["seconds_since_reap"] is not None and record["expected"].startswith("0xf11e")


@pytest.mark.full
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("bug", [b.id for b in bugs.load_bugs() if b.ready])
def test_every_ready_bug_on_every_arch(bug: str, tmp_path: Path) -> None:
    _seed_source()
    out = tmp_path / "bugs.json"
    proc = oomrace("bugs", bug, "--runs", "3", "--artifacts", str(tmp_path),
                   "--json", str(out), timeout=7000)
    rows = json.loads(out.read_text())["rows"]
    print(proc.stdout)
    for row in rows:
        assert not row["verdict"].startswith(("fix not clean", "detected where", "error")), row
    assert any(r["verdict"] == "caught, fix clean" for r in rows), proc.stdout
