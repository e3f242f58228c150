"""harness.kernel_log against the shared crash corpus (real console logs with known titles).

The corpus lives next to the repository (`<repo>/../shared/crash-corpus`) or wherever
$OOMRACE_CRASH_CORPUS points. Each file: `KEY: value` header lines, a blank line, the log.
TITLE (and any ALT) name the first crash; no TITLE means the log holds no crash.

The split. A fixed rule cuts the corpus in two: a log whose file name's sha256 is 0
mod 3 is *held out*, every other log is for *tuning* (`part_of`). Work on the parser
reads the tuning part's misses only; the held-out part is run to measure, and its
failures are never read to write a special case (its misses are not printed). The
two parts' detection and first-title scores are printed and asserted separately.

Honesty about the held-out figure: the parser was tuned on the whole corpus before
this split existed (earlier work, before issue 13), so the held-out part is contaminated by
that earlier tuning and its score overstates how the parser does on logs it has
never seen. `benchmarks/bench_unseen_corpus.py` scores a directory of truly unseen
logs the same way.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.kernel_log import parse

from ..conftest import missing_shared

REPO = Path(__file__).resolve().parents[2]

# Floors at the figures reached; raise them as the parser improves, never lower them
# to make a change pass. Whole corpus: 249/249 detection, 230/238 titles before the
# split; per part (tuning: 172 logs, 165 crashes; held-out: 77 logs, 73 crashes):
FLOORS: dict[str, tuple[float, float]] = {  # part: (detection, first title)
    "all": (1.0, 0.966),
    "tuning": (1.0, 0.969),
    "held-out": (1.0, 0.958),
}
HELD_OUT = "held-out"


def part_of(name: str) -> str:
    """The fixed split: sha256 of the file name, mod 3; 0 is held out."""
    digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    return HELD_OUT if digest % 3 == 0 else "tuning"


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


@dataclass
class Score:
    logs: int = 0
    detected: int = 0
    crashes: int = 0
    agreed: int = 0
    typed: int = 0
    type_agreed: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, case: Case) -> None:
        analysis = parse(case.log)
        self.logs += 1
        has_crash = bool(case.titles)
        if bool(analysis.reports) == has_crash:
            self.detected += 1
        else:
            got = analysis.reports[0].title if analysis.reports else "nothing"
            want = case.titles[0] if case.titles else "no crash"
            self.misses.append(f"{case.name}: detection: want {want!r}, got {got!r}")
        if not has_crash:
            return
        self.crashes += 1
        first = analysis.reports[0] if analysis.reports else None
        if first is not None and first.title in case.titles:
            self.agreed += 1
        elif first is not None:
            self.misses.append(f"{case.name}: title: want {case.titles[0]!r}, got {first.title!r}")
        if case.type and first is not None:
            self.typed += 1
            self.type_agreed += _norm_type(first.type) == _norm_type(case.type)

    def report(self, label: str, show_misses: bool) -> tuple[float, float]:
        detection = self.detected / self.logs
        agreement = self.agreed / self.crashes
        print(f"{label}: {self.logs} logs, {self.crashes} with a crash")
        print(f"  detection accuracy:    {self.detected}/{self.logs} = {detection:.1%}")
        print(f"  first-title agreement: {self.agreed}/{self.crashes} = {agreement:.1%}")
        if self.typed:
            print(f"  type agreement (info): {self.type_agreed}/{self.typed} = "
                  f"{self.type_agreed / self.typed:.1%}")
        for miss in self.misses if show_misses else ():
            print(f"  {miss}")
        return detection, agreement


def test_crash_corpus(cases: list[Case]) -> None:
    scores = {"tuning": Score(), HELD_OUT: Score(), "all": Score()}
    for case in cases:
        scores[part_of(case.name)].add(case)
    whole = scores["all"]
    for part in ("tuning", HELD_OUT):
        s = scores[part]
        whole.logs += s.logs
        whole.detected += s.detected
        whole.crashes += s.crashes
        whole.agreed += s.agreed
        whole.typed += s.typed
        whole.type_agreed += s.type_agreed
    print()
    failed: list[str] = []
    for part, label in (("all", "crash corpus"), ("tuning", "tuning part"),
                        (HELD_OUT, "held-out part")):
        # The held-out part's misses stay unread: reading them would tune on them.
        detection, agreement = scores[part].report(label, show_misses=part == "tuning")
        det_floor, title_floor = FLOORS[part]
        if detection < det_floor:
            failed.append(f"{label}: detection {detection:.1%} < {det_floor:.1%}")
        if agreement < title_floor:
            failed.append(f"{label}: title agreement {agreement:.1%} < {title_floor:.1%}")
    assert not failed, "; ".join(failed)


def test_split_is_fixed() -> None:
    """The split depends on the file name only: a third or so is held out, for good."""
    names = [str(n) for n in range(0, 1200, 3)]
    held = [n for n in names if part_of(n) == HELD_OUT]
    assert 0.25 < len(held) / len(names) < 0.42
    assert part_of("0") == part_of("0") and {part_of(n) for n in names} == {"tuning", HELD_OUT}


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
