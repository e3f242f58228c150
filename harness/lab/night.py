"""A night: its summary (summary.json), the comparison with the previous night, the
history of nights, JUnit XML, the report, and merging shards into one night."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .. import schema
from ..binomial import fisher_exact
from ..errors import UsageError, shown
from ..inputs import read_regular, safe_component
from . import safecopy
from .cells import host_record
from .record import (
    CellRecord,
    failure_message,
    junit_properties,
    write_json,
)

log = logging.getLogger(__name__)

KIND = "oomrace-lab-night"
JUNIT_CLASS = "tests.lab.lab_cells"
# A night's rate shifts are tested at this family-wise level: the chance that a night
# flags any rate shift when no cell's rate moved is at most 5% (Holm's correction over
# the cells tested, see rate_shifts).
RATE_SHIFT_ALPHA = 0.05


# --- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A cell that regressed, was fixed, or whose detection rate moved."""

    id: str
    kind: str
    detail: str
    previous: Any
    current: Any

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "detail": self.detail,
                "previous": self.previous, "current": self.current}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(str(data["id"]), str(data["kind"]), str(data.get("detail", "")),
                   data.get("previous"), data.get("current"))


@dataclass(frozen=True)
class Comparison:
    previous: Mapping[str, Any]  # night, name and finished_at of the previous night
    regressions: tuple[Change, ...] = ()
    fixes: tuple[Change, ...] = ()
    rate_changes: tuple[Change, ...] = ()
    new: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"previous": dict(self.previous),
                **{name: [c.to_dict() for c in getattr(self, name)]
                   for name in ("regressions", "fixes", "rate_changes")},
                "new": list(self.new), "missing": list(self.missing)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        def changes(name: str) -> tuple[Change, ...]:
            return tuple(Change.from_dict(c) for c in data.get(name) or ())

        return cls(previous=dict(data.get("previous") or {}),
                   regressions=changes("regressions"), fixes=changes("fixes"),
                   rate_changes=changes("rate_changes"), new=tuple(data.get("new") or ()),
                   missing=tuple(data.get("missing") or ()))


# --- the summary -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    planned: int
    finished: int
    passed: int
    failed: int
    not_run: int
    by_verdict: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "finished": self.finished, "passed": self.passed,
                "failed": self.failed, "not_run": self.not_run,
                "by_verdict": dict(self.by_verdict)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class NightSummary:
    """summary.json of a night: its cells (without the full reports), totals, host and
    the comparison with the previous night."""

    name: str
    matrix: str
    matrix_sha256: str
    started_at: str
    seconds: float
    cells: tuple[CellRecord, ...]
    planned: tuple[str, ...]
    night: str = ""
    finished_at: str = field(default_factory=_now)
    jobs: int | None = None
    shard: str | None = None
    interrupted: bool = False
    host: Mapping[str, Any] = field(default_factory=host_record)
    comparison: Comparison | None = None
    shards: tuple[Mapping[str, Any], ...] = ()  # the shards a merged night came from

    @property
    def not_run(self) -> list[str]:
        return sorted(set(self.planned) - {c.id for c in self.cells})

    @property
    def totals(self) -> Totals:
        passed = sum(1 for c in self.cells if c.passed)
        return Totals(planned=len(self.planned), finished=len(self.cells), passed=passed,
                      failed=len(self.cells) - passed, not_run=len(self.not_run),
                      by_verdict=dict(Counter(c.verdict for c in self.cells)))

    @property
    def regressions(self) -> tuple[Change, ...]:
        return self.comparison.regressions if self.comparison else ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": schema.SCHEMA_VERSION, "kind": KIND, "night": self.night, "name": self.name,
            "matrix": self.matrix, "matrix_sha256": self.matrix_sha256,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "seconds": self.seconds, "jobs": self.jobs, "shard": self.shard,
            "interrupted": self.interrupted, "host": dict(self.host),
            "planned": list(self.planned), "totals": self.totals.to_dict(),
            "cells": [c.to_dict(full=False) for c in self.cells],
            "comparison": self.comparison.to_dict() if self.comparison else None}
        if self.shards:
            data["shards"] = [dict(s) for s in self.shards]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path) -> NightSummary:
        schema.check_version(data, str(source))
        comparison = data.get("comparison")
        try:
            return cls(
    name=str(data.get("name", "")), matrix=str(data.get("matrix", "")),
                matrix_sha256=str(data.get("matrix_sha256", "")),
                started_at=str(data.get("started_at", "")),
                seconds=float(data.get("seconds") or 0),
                cells=tuple(CellRecord.from_dict(c, source) for c in data["cells"]),
                planned=tuple(str(p) for p in data.get("planned") or ()),
                night=str(data.get("night") or source.parent.name),
                finished_at=str(data.get("finished_at") or ""), jobs=data.get("jobs"),
                shard=data.get("shard"), interrupted=bool(data.get("interrupted")),
                host=dict(data.get("host") or {}),
                comparison=Comparison.from_dict(comparison) if comparison else None,
                shards=tuple(data.get("shards") or ()))
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise UsageError(f"{source} is not an oomrace lab summary ({e})") from None


def make_summary(records: Sequence[CellRecord], planned: Sequence[str], *, name: str,
                 matrix: str, matrix_sha256: str, started_at: str, seconds: float,
                 jobs: int | None = None, shard: str | None = None,
                 interrupted: bool = False, night: str = "") -> NightSummary:
    return NightSummary(
    name=name, matrix=matrix, matrix_sha256=matrix_sha256, started_at=started_at,
        seconds=round(seconds, 1), cells=tuple(sorted(records, key=lambda c: c.id)),
        planned=tuple(sorted(planned)), night=night, jobs=jobs, shard=shard,
        interrupted=interrupted)


def read_summary_json(path: Path) -> tuple[dict[str, Any], Path]:
    """The JSON of a night's summary.json (given the night's folder or the file)."""
    file = path / "summary.json" if path.is_dir() else path
    raw = read_regular(file, "summary", safecopy.MAX_JSON_BYTES,
                       "give a night's folder or its summary.json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{file} is not JSON: {str(e)[:100]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise UsageError(f"{file} is not an oomrace lab summary (no cells)")
    schema.check_version(data, str(file))
    return data, file


def read_summary(path: Path) -> NightSummary:
    """summary.json of a night, given the night's folder or the file itself."""
    data, file = read_summary_json(path)
    return NightSummary.from_dict(data, file)


# --- comparison with the previous night --------------------------------------------------------


def _verdict_change(old: CellRecord, cell: CellRecord) -> Change | None:
    """A regression (or a fix) of one cell's verdict from the previous night."""
    was, now = old.verdict, cell.verdict
    found = None
    if was == "clean" and now in ("corrupted", "crashed") and (
    cell.expected == "clean" or now == "crashed"):
        found = ("now-corrupts" if now == "corrupted" else "now-crashes",
                 f"was clean, now {now}: {cell.reason}")
    elif cell.expected == "corrupted" and was == "corrupted" and now != "corrupted":
        found = ("stopped-reproducing", f"was corrupted, now {now}: {cell.reason}")
    elif old.passed and not cell.passed:
        found = ("now-fails", f"was {was} (pass), now {now}: {cell.reason}")
    elif not old.passed and cell.passed:
        found = ("fixed", f"was {was}, now {now}")
    return None if found is None else Change(cell.id, found[0], found[1], was, now)


def rate_shift_p(old: CellRecord, cell: CellRecord) -> float | None:
    """Two-sided p-value of Fisher's exact test that the two nights' detection rates are
    equal (batches with and without a detection, one row per night); None when a night
    ran no batches or neither night detected anything (p would be 1).

    Why Fisher: exact at any batch count, where comparing two 95% intervals for overlap
    is both not a test at a known level and very insensitive (1/8 against 6/8 overlaps).
    """
    if not (old.trials and cell.trials) or not (old.detections or cell.detections):
        return None
    return fisher_exact(old.detections, max(old.trials - old.detections, 0),
                        cell.detections, max(cell.trials - cell.detections, 0))


def holm_rejections(pvalues: Mapping[str, float], alpha: float) -> dict[str, float]:
    """Holm's step-down correction: the i-th smallest of m p-values is rejected at
    alpha / (m - i) while every smaller one was; each rejection with its threshold.

    Why: a night compares many cells, and a regression fails the night (exit 3); Holm
    keeps the chance of any false rate shift at alpha with more power than Bonferroni.
    """
    ordered = sorted(pvalues.items(), key=lambda item: (item[1], item[0]))
    rejected: dict[str, float] = {}
    for i, (cid, p) in enumerate(ordered):
        threshold = alpha / (len(ordered) - i)
        if p > threshold:
            break
        rejected[cid] = threshold
    return rejected


def rate_shifts(pairs: Sequence[tuple[CellRecord, CellRecord]],
                alpha: float = RATE_SHIFT_ALPHA) -> dict[str, Change]:
    """The cells (previous, current) whose detection rate moved, by cell id.

    Only cells that detected something on either night are counted in Holm's m: with
    Fisher's test conditioned on the margins, leaving out tables whose margins make p = 1
    keeps the level.
    """
    tested = {cell.id: (old, cell, p) for old, cell in pairs
              if (p := rate_shift_p(old, cell)) is not None}
    flagged = holm_rejections({cid: t[2] for cid, t in tested.items()}, alpha)
    changes = {}
    for cid, threshold in flagged.items():
        old, cell, p = tested[cid]
        changes[cid] = Change(
            cid, "rate-shift",
            f"detection rate moved from {old.rate or 0:.2f} ({old.detections}/{old.trials} "
            f"batches) to {cell.rate or 0:.2f} ({cell.detections}/{cell.trials}): Fisher's "
            f"exact test p = {p:.2g} <= {threshold:.2g} ({alpha} after Holm's correction "
            f"over {len(tested)} cell(s) with detections)", old.rate, cell.rate)
    return changes


def compare(previous: NightSummary, current: NightSummary) -> Comparison:
    """Regressions and fixes from the previous night to this one, cell by cell.

    Regressions: a cell that was clean and now corrupts or crashes (unless it is expected to
    corrupt), an expected-corrupted cell that stopped reproducing, a detection rate that
    moved (Fisher's exact test, see rate_shifts), and a cell that passed and now fails for
    any other reason (a boot error, say). Fixes: a cell that failed and now passes.
    """
    before = {c.id: c for c in previous.cells}
    regressions: list[Change] = []
    fixes: list[Change] = []
    changes: list[Change] = []
    shifts = rate_shifts([(before[c.id], c) for c in current.cells if c.id in before])
    for cell in current.cells:
        old = before.get(cell.id)
        if old is None:
            continue
        change = _verdict_change(old, cell)
        if change is not None:
            (fixes if change.kind == "fixed" else regressions).append(change)
        shift = shifts.get(cell.id)
        if shift is not None:
            changes.append(shift)
            if not any(r.id == cell.id for r in regressions):
                regressions.append(shift)
    now_ids = {c.id for c in current.cells}
    return Comparison(
    previous={"night": previous.night, "name": previous.name,
                  "finished_at": previous.finished_at},
        regressions=tuple(regressions), fixes=tuple(fixes), rate_changes=tuple(changes),
        new=tuple(sorted(now_ids - set(before))), missing=tuple(sorted(set(before) - now_ids)))


def history_nights(history: Path | None, exclude: Path | None = None) -> list[NightSummary]:
    """Previous nights' summaries from a folder holding one folder per night, oldest first."""
    if history is None or not history.is_dir():
        return []
    nights = []
    skip = exclude.resolve() if exclude is not None else None
    for entry in sorted(history.iterdir()):
        if not (entry / "summary.json").is_file() or entry.resolve() == skip:
            continue
        try:
            nights.append(replace(read_summary(entry), night=entry.name))
        except UsageError:
            continue
    nights.sort(key=lambda s: (s.finished_at, s.night))
    return nights


# --- JUnit ------------------------------------------------------------------------------------


def junit_xml(summary: NightSummary) -> ET.ElementTree:
    """One <testcase> per cell (named as pytest names the cell), its figures as properties."""
    cells = summary.cells
    failed = [c for c in cells if not c.passed]
    not_run = summary.not_run
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", {
        "name": f"oomrace-lab.{summary.name or 'lab'}",
        "tests": str(len(cells) + len(not_run)), "failures": str(len(failed)), "errors": "0",
        "skipped": str(len(not_run)), "time": f"{sum(c.seconds for c in cells):.3f}",
        "timestamp": summary.started_at, "hostname": str(summary.host.get("hostname", "")),
    })
    for cell in cells:
        case = ET.SubElement(suite, "testcase", {
            "classname": JUNIT_CLASS, "name": f"test_cell[{cell.id}]",
            "time": f"{cell.seconds:.3f}"})
        props = ET.SubElement(case, "properties")
        for name, value in junit_properties(cell):
            ET.SubElement(props, "property", {"name": name, "value": value})
        if not cell.passed:
            failure = ET.SubElement(case, "failure", {"message": failure_message(cell)})
            failure.text = failure_message(cell)
    for cid in not_run:
        case = ET.SubElement(suite, "testcase", {"classname": JUNIT_CLASS,
                                                 "name": f"test_cell[{cid}]", "time": "0"})
        ET.SubElement(case, "skipped", {"message": "not run (interrupted or deselected)"})
    ET.indent(suites)
    return ET.ElementTree(suites)


# --- writing a night ----------------------------------------------------------------------------


def finish_night(out: Path, summary: NightSummary, history: Path | None,
                 previous: NightSummary | None) -> NightSummary:
    """Compare, then write summary.json, junit.xml and report.html into `out`."""
    from .report import write_report

    summary = replace(summary, night=summary.night or out.name,
                      comparison=compare(previous, summary) if previous else None)
    write_json(out / "summary.json", summary.to_dict())
    junit_xml(summary).write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    nights = history_nights(history, exclude=out)
    if previous is not None and not any(
    n.finished_at == previous.finished_at and n.night == previous.night
            for n in nights):
        nights.append(previous)
        nights.sort(key=lambda s: s.finished_at)
    write_report(out / "report.html", summary, nights)
    return summary


def exit_code(summary: NightSummary) -> int:
    """0 all cells as expected; 1 some cell not as expected; 3 a regression against the
    previous night; 130 interrupted (the finished cells are kept)."""
    if summary.interrupted:
        return 130
    if summary.regressions:
        return 3
    totals = summary.totals
    return 0 if totals.failed == 0 and totals.not_run == 0 else 1


def print_night(summary: NightSummary, out: Path) -> None:
    t = summary.totals
    for c in summary.cells:
        rate = ""
        if c.trials:
            rate = (f" rate {c.rate or 0:.2f} [{c.ci95[0]:.2f}, {c.ci95[1]:.2f}] "
                    f"({c.detections}/{c.trials} batches, {c.iterations} iterations)")
        print(f"  {'PASS' if c.passed else 'FAIL'} {c.id}: {c.verdict} "
              f"(expected {c.expected}){rate} {c.seconds:.0f} s")
    comparison = summary.comparison
    for r in summary.regressions:
        print(f"  REGRESSION {r.id}: {r.kind}: {r.detail}")
    for f in comparison.fixes if comparison else ():
        print(f"  FIXED {f.id}: {f.detail}")
    print(f"lab: {t.passed} passed, {t.failed} failed, {t.not_run} not run of "
          f"{t.planned} cells"
          + (f"; {len(comparison.regressions)} regression(s) against "
             f"{comparison.previous.get('night')}" if comparison else "")
          + f"\n  summary: {out / 'summary.json'}\n  junit:   {out / 'junit.xml'}"
          f"\n  report:  {out / 'report.html'}", flush=True)


# --- merging shards ------------------------------------------------------------------------------


NIGHT_MARKER = ".oomrace-night"
"""The file that says a folder is a night oomrace made: --out must be new, empty, or
hold it, so that `--out /` or an unrelated folder is never written into."""


def make_out_dir(out: Path) -> Path:
    """--out as a night's folder: made (with its marker) when missing or empty, else
    one that oomrace made; a file, `/` or an unrelated folder is a bad option."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if _is_night(out):
            return out
        if os.path.samefile(out, out.anchor) or any(out.iterdir()):
            raise UsageError(f"--out {shown(out)}: an existing folder that is not an oomrace "
                             f"night (it has no {NIGHT_MARKER}); give a new or empty folder, "
                             "or the folder of an earlier night")
        (out / NIGHT_MARKER).write_text("a night of `oomrace lab`; see summary.json\n")
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--out {shown(out)} is a file, not a folder; give a folder for "
                         "the night") from None
    except OSError as e:
        raise UsageError(f"--out {shown(out)}: cannot create it ({e.strerror}); give a "
                         "folder you can write to") from None
    return out


def _is_night(out: Path) -> bool:
    """Whether `out` holds the marker, or is a night from before the marker (its
    summary.json says so), which then gets the marker."""
    marker = out / NIGHT_MARKER
    if marker.is_file() and not marker.is_symlink():
        return True
    try:
        summary = safecopy.read_json(out / "summary.json", "summary.json")
    except UsageError:
        return False
    if isinstance(summary, dict) and summary.get("kind") == KIND:
        marker.write_text("a night of `oomrace lab`; see summary.json\n")
        return True
    return False


def _checked_ids(ids: object, directory: Path) -> list[str]:
    """Cell ids from a shard's summary become folder names under --out: each must be one
    plain path component, or `../../x` would replace a folder outside it."""
    if not isinstance(ids, list):
        raise UsageError(f"{directory}/summary.json: planned must be a list of cell ids")
    return [safe_component(cid, f"{directory}/summary.json: cell id") for cid in ids]


def _merge_shard(directory: Path, summary: Mapping[str, Any], cells_fd: int,
                 records: dict[str, CellRecord], origin: dict[str, Path]) -> set[str]:
    """Copy one shard's cell folders into --out's `cells` (open as `cells_fd`) and read
    its records; its planned ids. Nothing is followed out of the shard (safecopy)."""
    planned = set(_checked_ids(summary.get("planned", []), directory))
    with contextlib.ExitStack() as stack:
        try:
            shard_cells: int | None = stack.enter_context(
                safecopy.closing_fd(safecopy.open_dir(directory / "cells")))
        except OSError as e:
            shard_cells = None
            if e.errno != errno.ENOENT:
                log.warning("lab merge: skipped %s/cells: %s", directory,
                            "a symbolic link (not followed)" if e.errno == errno.ELOOP
                            else e.strerror)
        for cell in summary["cells"]:
            cid = _checked_ids([cell.get("id") if isinstance(cell, dict) else None],
                               directory)[0]
            if cid in records:
                raise UsageError(f"cell {cid} is in both {origin[cid]} and {directory}; "
                                 "shards must not overlap")
            origin[cid] = directory
            full = _copy_cell(directory, shard_cells, cells_fd, cid) or cell
            record = CellRecord.from_dict(full, directory)
            if record.id != cid:
                raise UsageError(f"{directory}: cells/{cid}/cell.json holds cell "
                                 f"{record.id!r}, not {cid}; the shard is corrupt")
            records[cid] = record
    return planned


def _copy_cell(directory: Path, shard_cells: int | None, cells_fd: int,
               cid: str) -> Any:
    """Copy the cell's folder (when the shard has one) and return its cell.json's JSON
    (None when it has none: the summary's entry stands in, without the reports)."""
    if shard_cells is None:
        return None
    where = f"{directory}/cells/{cid}"
    try:
        source = safecopy.open_dir(cid, shard_cells)
    except OSError as e:
        if e.errno != errno.ENOENT:
            log.warning("lab merge: skipped %s: %s", where,
                        "a symbolic link (not followed)" if e.errno == errno.ELOOP
                        else e.strerror)
        return None
    with safecopy.closing_fd(source):
        safecopy.copy_cell(source, cells_fd, cid, where)
        try:
            return safecopy.read_json("cell.json", f"{where}/cell.json", dir_fd=source)
        except safecopy.MissingFile:
            return None


def _shard_summary(directory: Path) -> dict[str, Any]:
    """A shard's summary.json, read without following a link in the shard."""
    data = safecopy.read_json(directory / "summary.json", f"{directory}/summary.json")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise UsageError(f"{directory}/summary.json is not an oomrace lab summary (no cells)")
    schema.check_version(data, f"{directory}/summary.json")
    return data


def merge(dirs: Sequence[Path], out: Path) -> NightSummary:
    """Join the outputs of shards (or any nights of the same matrix) into one night in
    `out`: their cell folders are copied in and summary, JUnit and report made anew."""
    if not dirs:
        raise UsageError("lab merge needs the shard folders to merge")
    out = out.resolve()
    summaries = [_shard_summary(d) for d in dirs]
    if len({s.get("matrix_sha256") for s in summaries}) > 1:
        raise UsageError("the folders were run from different matrices (their matrix_sha256 "
                         "differ); merge only shards of one night")
    make_out_dir(out)
    records: dict[str, CellRecord] = {}
    origin: dict[str, Path] = {}
    planned: set[str] = set()
    with safecopy.closing_fd(safecopy.cells_folder(out)) as cells_fd:
        for directory, summary in zip(dirs, summaries, strict=True):
            planned |= _merge_shard(directory, summary, cells_fd, records, origin)
    first = summaries[0]
    merged = make_summary(
    list(records.values()), sorted(planned), name=first.get("name", ""),
        matrix=first.get("matrix", ""), matrix_sha256=first.get("matrix_sha256", ""),
        started_at=min(str(s.get("started_at", "")) for s in summaries),
        seconds=max(float(s.get("seconds") or 0) for s in summaries),
        interrupted=any(s.get("interrupted") for s in summaries), night=out.name)
    shards = tuple({"dir": str(d), "shard": s.get("shard"), "host": s.get("host"),
                    "cells": len(s["cells"])} for d, s in zip(dirs, summaries, strict=True))
    finished = max(str(s.get("finished_at", "")) for s in summaries)
    return replace(merged, shards=shards, finished_at=finished)
