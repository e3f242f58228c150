"""The console's one reader (kernel_log.LogReader / ConsoleFile): fed a log in chunks of
any size, at every chunk's end it answers as today's full parse of the text so far
(`parse(path.read_text(errors="replace"))`), and at the end as the one-shot parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kernel_log

from ..conftest import REPO

hypothesis = pytest.importorskip("hypothesis")  # in the dev extras (pip install -e .[dev])
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DATA = REPO / "tests" / "data"
RECORDED = sorted([*(DATA / "kernel_logs").glob("*.log"), *(DATA / "lkdtm").glob("*/*.log")])
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _full_parse(tmp_path: Path, data: bytes) -> kernel_log.LogAnalysis:
    """What a run read its console log with before the reader: the file, parsed whole."""
    path = tmp_path / "prefix.log"
    path.write_bytes(data)
    return kernel_log.parse(path.read_text(errors="replace"))


def _events(analysis: kernel_log.LogAnalysis) -> list[dict[str, object]]:
    return [e.to_dict() for e in analysis.events]


def _cuts(draw: st.DrawFn, size: int) -> list[int]:
    """Chunk ends over `size` bytes, anywhere: chunks of one byte to all of it."""
    cuts = draw(st.lists(st.integers(1, size), max_size=60))
    runs = draw(st.lists(st.integers(1, size), max_size=3))  # a few bytes at a time
    cuts += [c for start in runs for c in range(start, min(size, start + 12))]
    return sorted({*cuts, size})


@st.composite
def chunked_log(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = draw(st.sampled_from(RECORDED)).read_bytes()
    return data, _cuts(draw, len(data))


def _check_every_chunk(tmp_path: Path, data: bytes, ends: list[int]) -> None:
    reader = kernel_log.LogReader()
    cursor, start = reader.cursor(), 0
    for end in ends:
        reader.feed(data[start:end])
        start = end
        expected = _full_parse(tmp_path, data[:end])
        assert list(reader.reports()) == expected.reports
        new, cursor = reader.since(cursor)
        assert cursor == len(expected.reports)
        assert list(new) == expected.reports[len(expected.reports) - len(new):]
    whole = _full_parse(tmp_path, data)
    analysis = reader.analysis()
    assert analysis.reports == whole.reports and _events(analysis) == _events(whole)


@PROPERTY
@given(chunked_log())
def test_recorded_logs_in_random_chunks_read_as_the_full_parse(
        tmp_path: Path, log: tuple[bytes, list[int]]) -> None:
    _check_every_chunk(tmp_path, *log)


# Recorded reports (whole, and their lines), and the bytes a serial console adds or
# mangles: CR before LF or alone, invalid UTF-8, a line without its end.
_WARNING = (DATA / "lkdtm" / "x86_64" / "WARNING.log").read_bytes().split(b"\n")[227:266]
_POISON = (DATA / "kernel_logs" / "aarch64-v6.1-reaper-fullmm-mrelease.log") \
    .read_bytes().split(b"\n")[135:164]
_PIECES = st.sampled_from([
    b"\n".join(_WARNING), b"\n".join(_POISON), *_WARNING, *_POISON,
    b"\r", b"\r\n", b"\n", b"\xe2\x82", b"\xff", b"oomrace# \x1b[6n",
]) | st.binary(max_size=30)


@st.composite
def mangled_log(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    pieces = draw(st.lists(_PIECES, min_size=1, max_size=120))
    data = b"".join(p + draw(st.sampled_from([b"\n", b"\r\n", b""])) for p in pieces)
    data = data or b"\n"  # empty pieces without separators: no byte to cut at
    return data, _cuts(draw, len(data))


@PROPERTY
@given(mangled_log())
def test_mangled_console_bytes_in_random_chunks_read_as_the_full_parse(
        tmp_path: Path, log: tuple[bytes, list[int]]) -> None:
    _check_every_chunk(tmp_path, *log)


def test_the_file_reader_reads_what_qemu_appends(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    reader = kernel_log.ConsoleFile(path)
    assert reader.cursor() == 0 and reader.reports() == ()  # QEMU has not started
    warning = (DATA / "lkdtm" / "x86_64" / "WARNING.log").read_bytes()
    bug = (DATA / "lkdtm" / "x86_64" / "BUG.log").read_bytes()
    path.write_bytes(warning)
    cursor = reader.cursor()
    assert cursor == 1
    with path.open("ab") as f:
        f.write(bug)
    new, cursor = reader.since(cursor)
    assert [r.title for r in new] == [r.title for r in _full_parse(tmp_path, bug).reports]
    assert reader.analysis().reports == _full_parse(tmp_path, warning + bug).reports
    assert reader.since(cursor) == ((), cursor)


def test_a_truncated_file_is_a_new_log(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    reader = kernel_log.ConsoleFile(path)
    path.write_bytes((DATA / "lkdtm" / "x86_64" / "WARNING.log").read_bytes() * 2)
    assert reader.cursor() == 2
    bug = (DATA / "lkdtm" / "aarch64" / "BUG.log").read_bytes()
    path.write_bytes(bug)  # a new QEMU truncated it
    assert reader.analysis().reports == _full_parse(tmp_path, bug).reports


def test_the_reader_holds_a_window_not_the_log() -> None:
    """Fed report after report, the scanner keeps at most a report's span of lines."""
    reader = kernel_log.LogReader()
    report = (DATA / "kernel_logs" / "aarch64-v6.1-reaper-fullmm-mrelease.log").read_bytes()
    for _ in range(40):
        reader.feed(report)
        assert reader.window_lines() <= kernel_log.MAX_REPORT_LINES + report.count(b"\n")
    assert reader.cursor() == 40 * 5
