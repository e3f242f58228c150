from dataclasses import dataclass

import pytest

from harness.verdict import decide, wilson_interval


@dataclass
class R:
    title: str


def test_clean() -> None:
    assert decide("clean", [], None).verdict == "clean"


def test_page_poisoning_is_corruption_even_if_checker_was_clean() -> None:
    v = decide("clean", [R("pagealloc: memory corruption")], None)
    assert v.verdict == "corrupted" and "pagealloc" in v.reason


def test_checker_corruption() -> None:
    assert decide("corrupted", [], None).verdict == "corrupted"


def test_oops_is_crash_and_beats_harness_error() -> None:
    v = decide("error", [R("BUG: unable to handle kernel paging request in foo")], "lost ssh")
    assert v.verdict == "crashed"


def test_error() -> None:
    assert decide("error", [], "QEMU died").verdict == "error"
    assert decide("error", [], None).verdict == "error"


def test_wilson() -> None:
    lo, hi = wilson_interval(0, 0)
    assert (lo, hi) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    lo, hi = wilson_interval(0, 300)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi < 0.013
