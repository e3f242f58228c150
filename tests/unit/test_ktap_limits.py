"""The KTAP parser on hostile text (issue 23, item 3): a guest decides what it prints, so
any text of up to 10 MB is read in under 2 s of CPU and 100 MB of memory, and never
raises. Huge plans keep their number without listing millions of MISSING tests; deep
nesting, repeated version lines and numbers of thousands of digits are errors, not
exceptions."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.ktap import KtapDocument, Result, parse
from harness.ktap.lines import LIMITS

MB = 1 << 20
SECONDS = 2.0
PEAK_BYTES = 100 * MB


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def peak_growth(run: Callable[[], KtapDocument]) -> tuple[KtapDocument, int]:
    """What `run` returns, and how far it raised this process's resident memory above
    where it was (Linux's peak-RSS reset, /proc/self/clear_refs; memory freed earlier
    and reused makes it a little low: the 10 MB cases run in a fresh process)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_bytes("VmRSS")
    found = run()
    return found, _status_bytes("VmHWM") - before


def bounded(text: str) -> KtapDocument:
    """The document, once its parse took under 2 s of CPU and 100 MB (the text itself
    not counted)."""
    started = time.process_time()
    doc, peak = peak_growth(lambda: parse(text))
    seconds = time.process_time() - started
    assert seconds < SECONDS, f"{seconds:.2f} s of CPU for {len(text)} characters"
    assert peak < PEAK_BYTES, f"{peak / MB:.0f} MB for {len(text)} characters"
    return doc


def test_a_plan_of_a_trillion_tests_keeps_its_number_and_lists_up_to_the_cap() -> None:
    doc = bounded("KTAP version 1\n1..1000000000000\nok 1 first\n")
    assert doc.plan == 1_000_000_000_000 and not doc.complete
    assert len(doc.tests) == LIMITS.tests and doc.tests[0].result is Result.PASS
    assert doc.tests[-1].result is Result.MISSING and doc.tests[-1].number == LIMITS.tests
    assert any("not listed" in e for e in doc.errors)
    assert doc.counts()["missing"] == LIMITS.tests - 1  # a lower bound past the cap


def test_a_plan_of_ten_million_tests() -> None:
    doc = bounded("KTAP version 1\n1..10000000\n")
    assert doc.plan == 10_000_000 and len(doc.tests) == LIMITS.tests and not doc.complete


def test_a_thousand_nested_levels() -> None:
    text = "".join("  " * level + "KTAP version 1\n" for level in range(1000))
    text += "".join("  " * level + "ok 1 t\n" for level in reversed(range(1000)))
    doc = bounded(text)
    depth = max(len(path) for path, _ in doc.walk())
    assert depth <= LIMITS.depth + 1
    assert any(f"more than {LIMITS.depth} levels" in e for e in doc.errors)
    assert doc.to_json()["tests"]  # walk, counts and the JSON stay within the recursion limit


def test_five_hundred_version_lines() -> None:
    doc = bounded("KTAP version 1\n" * 500)
    assert len(doc.errors) == LIMITS.errors + 1  # the list of errors is capped too
    assert doc.errors[-1].startswith(f"more than {LIMITS.errors} errors")


@pytest.mark.parametrize("digits", [4400, 500])  # int() refuses more than 4300 digits
@pytest.mark.parametrize("where", ["plan", "test", "version"])
def test_a_number_of_thousands_of_digits(where: str, digits: int) -> None:
    huge = "9" * digits  # 4400 digits: a line past LIMITS.line_chars, cut there
    text = {"plan": f"KTAP version 1\n1..{huge}\nok 1 a\n",
            "test": f"KTAP version 1\n1..1\nok {huge} a\n",
            "version": f"KTAP version {huge}\n1..1\nok 1 a\n"}[where]
    doc = bounded(text)
    assert [t.number for t in doc.tests] == [1] and doc.tests[0].result is Result.PASS
    assert any("digits" in e for e in doc.errors), doc.errors


def test_a_long_line_of_spaces_does_not_backtrack() -> None:
    for line in ("ok 1 a" + " " * MB + "b", "# Subtest: a" + " " * MB + "b",
                 "1..1" + " " * MB + "x", "KTAP version 1" + " " * MB + "x"):
        bounded(f"KTAP version 1\n1..1\n{line}\n")


WORST = {  # (line, first line): 10 MB of the line, each case at one limit or another
    "result lines": ("ok 1 a\n", "KTAP version 1\n"),
    "numberless TAP results": ("ok\n", "TAP version 13\n"),
    "empty lines": ("\n", "KTAP version 1\n"),
    "version lines": ("KTAP version 1\n", ""),
    "nested plans": ("  KTAP version 1\n  1..100000\n", "KTAP version 1\n"),
    "kselftest nesting": ("# " * 40 + "TAP version 13\n", "TAP version 13\n"),
    "wide characters": ("ok 1 \U0001f600 name\n", "KTAP version 1\n"),
    "no document": ("x", ""),
    "almost version lines": ("TAP version x\n", ""),
}
_CHILD = f"""
import json, sys, time
from pathlib import Path
sys.path[:0] = {sys.path!r}
from harness.ktap import parse
def status(field):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024
line, head = json.loads(sys.argv[1])
text = head + line * ((10 * (1 << 20) - len(head)) // len(line))
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
started = time.process_time()
doc = parse(text)
print(json.dumps(dict(seconds=time.process_time() - started, peak=status("VmHWM") - before,
                      tests=len(doc.tests), truncated=doc.truncated, errors=len(doc.errors))))
"""


CHEAP = ("result lines", "nested plans", "kselftest nesting")  # the rest: full tier


@pytest.mark.parametrize("name", [n if n in CHEAP else pytest.param(n, marks=pytest.mark.full)
                                  for n in WORST])
def test_ten_megabytes_at_each_limit(name: str) -> None:
    """In a fresh process each, so that the peak of memory is this parse's alone."""
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(WORST[name])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert found["seconds"] < SECONDS and found["peak"] < PEAK_BYTES, found
    assert found["truncated"] or found["errors"] or not found["tests"]


LINES = st.one_of(
    st.sampled_from(["KTAP version 1", "TAP version 13", "TAP version 14", "1..3",
                     "1..99999999999", "ok 1 a", "not ok 2 b # SKIP x", "ok", "ok 7",
                     "# Subtest: s", "Bail out! no", "# diag", "# # TAP version 13",
                     "# ok 1 x", "", "[    1.000000] ok 1 t", "\t1..2", "not ok"]),
    st.text(max_size=40))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 60), LINES), max_size=12),
       st.integers(1, 60_000))
def test_any_text_is_read_within_bounds(lines: list[tuple[int, str]], repeat: int) -> None:
    """Indented, repeated runs of lines (up to ~10 MB) from KTAP's vocabulary or any
    text: never an exception, never over the caps."""
    unit = "".join(" " * indent + line + "\n" for indent, line in lines)
    text = unit * min(repeat, (10 * MB) // max(1, len(unit)))
    doc = bounded(text)
    assert len(list(doc.walk())) <= LIMITS.tests + LIMITS.depth + 1
    assert len(doc.errors) <= LIMITS.errors + 1
    KtapDocument.from_json(doc.to_json())
