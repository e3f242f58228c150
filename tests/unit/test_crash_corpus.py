"""harness.kernel_log against the shared crash corpus (real console logs with known titles).

The corpus lives next to the repository (`<repo>/../shared/crash-corpus`) or wherever
$OOMRACE_CRASH_CORPUS points. Each file: `KEY: value` header lines, a blank line, the log.
TITLE (and any ALT) name the first crash; no TITLE means the log holds no crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.kernel_log import parse

from ..conftest import missing_shared

REPO = Path(__file__).resolve().parents[2]

# Floors at the figures reached (249/249 detection, 226/238 titles); raise them as the
# parser improves, never lower them to make a change pass.
DETECTION_FLOOR = 1.0
TITLE_FLOOR = 0.949


@dataclass
class Case:
    name: str
    log: str
    titles: list[str] = field(default_factory=list)  # TITLE first, then the ALTs
    type: str | None = None
    corrupted: bool = False


def corpus_dir() -> Path:
    env = os.environ.get("OOMRACE_CRASH_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "crash-corpus"


def load_case(path: Path) -> Case:
    raw = path.read_bytes().decode("utf-8", errors="replace")
    case = Case(path.name, "")
    if raw.startswith("\n"):
        case.log = raw[1:]
        return case
    head, _, case.log = raw.partition("\n\n")
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "TITLE":
            case.titles.insert(0, value)
        elif key == "ALT":
            case.titles.append(value)
        elif key == "TYPE":
            case.type = value
        elif key == "CORRUPTED":
            case.corrupted = value == "Y"
    return case


def load_corpus() -> list[Case]:
    """Every corpus log; without the corpus a skip that says so, and a failure in CI."""
    d = corpus_dir()
    if not d.is_dir():
        missing_shared(
            f"crash corpus not found at {d}: check out the shared corpus next to the repo "
            "or set OOMRACE_CRASH_CORPUS to its directory"
        )
    files = sorted(p for p in d.iterdir() if p.is_file() and p.name != "README.md")
    if not files:
        pytest.fail(f"crash corpus at {d} holds no logs")
    return [load_case(p) for p in files]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_corpus()


def _norm_type(t: str) -> str:
    return t.upper().replace("_", "-")


def test_crash_corpus(cases: list[Case]) -> None:
    detected = 0
    titled = 0
    agreed = 0
    typed = 0
    type_agreed = 0
    misses: list[str] = []
    for case in cases:
        analysis = parse(case.log)
        has_crash = bool(case.titles)
        if bool(analysis.reports) == has_crash:
            detected += 1
        else:
            got = analysis.reports[0].title if analysis.reports else "nothing"
            want = case.titles[0] if case.titles else "no crash"
            misses.append(f"{case.name}: detection: want {want!r}, got {got!r}")
        if not has_crash:
            continue
        titled += 1
        first = analysis.reports[0] if analysis.reports else None
        if first is not None and first.title in case.titles:
            agreed += 1
        elif first is not None:
            misses.append(f"{case.name}: title: want {case.titles[0]!r}, got {first.title!r}")
        if case.type and first is not None:
            typed += 1
            type_agreed += _norm_type(first.type) == _norm_type(case.type)
    detection = detected / len(cases)
    agreement = agreed / titled
    print()
    print(f"crash corpus: {len(cases)} logs, {titled} with a crash")
    print(f"  detection accuracy:    {detected}/{len(cases)} = {detection:.1%}")
    print(f"  first-title agreement: {agreed}/{titled} = {agreement:.1%}")
    if typed:
        print(f"  type agreement (info): {type_agreed}/{typed} = {type_agreed / typed:.1%}")
    for miss in misses:
        print(f"  {miss}")
    assert detection >= DETECTION_FLOOR, f"detection {detection:.1%} < {DETECTION_FLOOR:.1%}"
    assert agreement >= TITLE_FLOOR, f"title agreement {agreement:.1%} < {TITLE_FLOOR:.1%}"


def test_corpus_missing_skips_with_the_reason_and_fails_in_ci(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A newcomer's clone has no ../shared: skip, saying so; CI has it: fail, never skip."""
    monkeypatch.setenv("OOMRACE_CRASH_CORPUS", str(tmp_path / "absent"))
    assert not corpus_dir().exists()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="crash corpus not found"):
        load_corpus()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="crash corpus not found"):
        load_corpus()
