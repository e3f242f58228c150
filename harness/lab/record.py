"""What a cell left: its CellRecord (cells/<id>/cell.json), read and written only here as
JSON, with its JUnit properties and failure message. The axes of matrix.AXES appear in
the record and the properties by themselves (read at call time, never copied)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import atomicio, schema
from ..errors import UsageError
from ..inputs import safe_component
from . import checked, matrix
from .matrix import Cell

LOG_FILES = (("dir", ""), ("console", "console.log"), ("dmesg", "dmesg.txt"),
             ("result", "result.json"), ("record", "cell.json"), ("ktap", "ktap"))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """A lab JSON file, with its schema_version first, written atomically."""
    atomicio.write_json(path, schema.versioned(data))


def cell_dir(out: Path, cid: str) -> Path:
    return out / "cells" / cid


def outcome(expected: str, verdict: str) -> str:
    return "pass" if verdict == expected else "fail"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def counts(items: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    return dict(Counter(str(item.get(key, "?")) for item in items))


def record_keys() -> tuple[str, ...]:
    """What the summary, JUnit and the report read from every record."""
    return ("id", *(a.key for a in matrix.AXES), "repeat", "expected", "verdict", "outcome",
            "paths")


@dataclass(frozen=True)
class CellRecord:
    """A finished (or not run) cell: the cell, its verdict and figures, and what it took
    to run it again. In summary.json the full reports and events are left out (their
    titles and kinds counted); cell.json keeps them."""

    cell: Cell
    id: str = ""  # the id the cell had when it ran (an older night's ids are kept)
    verdict: str = "error"
    reason: str | None = "not run"
    outcome: str = "fail"
    iterations: int = 0
    trials: int = 0
    detections: int = 0
    rate: float | None = None
    ci95: tuple[float, float] = (0.0, 1.0)
    seconds: float = 0.0
    boot_seconds: float | None = None
    started_at: str = field(default_factory=_now)
    error: str | None = None
    reports: tuple[Mapping[str, Any], ...] = ()
    events: tuple[Mapping[str, Any], ...] = ()
    report_titles: Mapping[str, int] = field(default_factory=dict)
    event_counts: Mapping[str, int] = field(default_factory=dict)
    repro: Mapping[str, Any] = field(default_factory=dict)
    kernel_description: str | None = None  # these two only once the cell ran
    taint: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # Defaults that follow from other fields (set once, before anyone reads them).
        if not self.id:
            object.__setattr__(self, "id", self.cell.id)
        if self.reports and not self.report_titles:
            object.__setattr__(self, "report_titles", counts(self.reports, "title"))
        if self.events and not self.event_counts:
            object.__setattr__(self, "event_counts", counts(self.events, "kind"))

    @property
    def expected(self) -> str:
        return self.cell.expected

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    @property
    def paths(self) -> dict[str, str]:
        return {key: f"cells/{self.id}/{name}" for key, name in LOG_FILES}

    def to_dict(self, full: bool = True) -> dict[str, Any]:
        """cell.json (`full`) or the record's entry in summary.json."""
        data: dict[str, Any] = {"id": self.id, **self.cell.axis_values(),
                                "repeat": self.cell.repeat, "expected": self.expected}
        data.update({name: getattr(self, name) for name in (
    "verdict", "reason", "outcome", "iterations", "trials", "detections", "rate")})
        data.update({"ci95": list(self.ci95), "seconds": self.seconds,
                     "boot_seconds": self.boot_seconds, "started_at": self.started_at,
                     "error": self.error, "cell": self.cell.to_dict(), "paths": self.paths})
        if full:
            data.update({"reports": list(self.reports), "events": list(self.events)})
        data["repro"] = dict(self.repro)
        if self.taint is not None:
            data.update({"kernel_description": self.kernel_description,
                         "taint": dict(self.taint)})
        if not full:
            data.update({"report_titles": dict(self.report_titles),
                         "event_counts": dict(self.event_counts)})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: object) -> CellRecord:
        """A record read from JSON; UsageError (naming `source`) when it lacks what the
        summary, JUnit and report read."""
        if not isinstance(data, Mapping):
            raise UsageError(f"{source}: a cell record is not a JSON object; the shard is "
                             "corrupt, run it again")
        schema.check_version(data, str(source))
        missing = [k for k in record_keys() if k not in data]
        paths = data.get("paths")
        if not missing and not (isinstance(paths, dict) and {"console", "dmesg"} <= set(paths)):
            missing = ["paths.console/paths.dmesg"]
        if missing:
            raise UsageError(f"{source}: cell {data.get('id')!r} lacks {', '.join(missing)}; "
                             "the shard's summary.json or cell.json is corrupt, run it again")
        try:
            safe_component(data["id"], "cell id")
            return cls._from_checked(data)
        except UsageError as e:
            raise UsageError(f"{source}: cell {_shown_id(data)}: {e}; the shard's "
                             "summary.json or cell.json is corrupt, run it again") from None
        except (TypeError, ValueError, KeyError) as e:
            raise UsageError(f"{source}: cell {_shown_id(data)} is corrupt ({e}); run it "
                             "again") from None

    @classmethod
    def _from_checked(cls, data: Mapping[str, Any]) -> CellRecord:
        cell_data = dict(checked.mapping(data, "cell"))
        for axis in matrix.AXES:  # a record whose "cell" is missing or older
            cell_data.setdefault(axis.field, data[axis.key])
        cell_data.setdefault("repeat", data["repeat"])
        cell_data.setdefault("expected", data["expected"])
        return cls(
            cell=Cell.from_dict(checked.cell_fields(cell_data, Cell)), id=checked.text(data, "id"),
            verdict=checked.text(data, "verdict"), reason=checked.optional_text(data, "reason"),
            outcome=checked.text(data, "outcome"), iterations=checked.count(data, "iterations"),
            trials=checked.count(data, "trials"), detections=checked.count(data, "detections"),
            rate=checked.optional_number(data, "rate"), ci95=checked.interval(data, "ci95"),
            seconds=checked.number(data, "seconds"),
            boot_seconds=checked.optional_number(data, "boot_seconds"),
            started_at=checked.text(data, "started_at", ""),
            error=checked.optional_text(data, "error"),
            reports=checked.objects(data, "reports"), events=checked.objects(data, "events"),
            report_titles=checked.counts(data, "report_titles"),
            event_counts=checked.counts(data, "event_counts"),
            repro=checked.mapping(data, "repro"),
            kernel_description=checked.optional_text(data, "kernel_description"),
            taint=checked.optional_mapping(data, "taint"))

    def write(self, out: Path) -> None:
        write_json(cell_dir(out, self.id) / "cell.json", self.to_dict())


def _shown_id(data: Mapping[str, Any]) -> str:
    text = repr(data.get("id"))
    return text if len(text) <= 80 else text[:80] + "..."


def read_records(out: Path, ids: Iterable[str]) -> list[CellRecord]:
    """The cell.json of every planned cell that finished (in any run into this night)."""
    records = []
    for cid in ids:
        path = cell_dir(out, cid) / "cell.json"
        try:
            records.append(CellRecord.from_dict(json.loads(path.read_text()), path))
        except (OSError, ValueError, UsageError):
            continue  # a missing or damaged cell.json counts as not finished
    return records


def junit_properties(record: CellRecord) -> list[tuple[str, str]]:
    """The figures of a cell, as JUnit <property> name/value pairs."""
    low, high = record.ci95
    repro = record.repro
    kernel = repro.get("kernel") or {}
    props: list[tuple[str, Any]] = [
        *record.cell.axis_values().items(), ("repeat", record.cell.repeat),
        ("expected", record.expected), ("verdict", record.verdict),
        ("reason", record.reason or ""), ("iterations", record.iterations),
        ("trials", record.trials), ("detections", record.detections),
        ("rate", "" if record.rate is None else f"{record.rate:.4f}"),
        ("ci95_low", f"{low:.4f}"), ("ci95_high", f"{high:.4f}"),
        ("seconds", record.seconds), ("console_log", record.paths["console"]),
        ("dmesg", record.paths["dmesg"]), ("seed", record.cell.seed),
        ("qemu_version", (repro.get("qemu") or {}).get("version", "")),
        ("kernel_source", kernel.get("source_identity") or ""),
        ("config_sha256", kernel.get("config_sha256") or ""),
    ]
    return [(name, str(value)) for name, value in props]


def failure_message(record: CellRecord) -> str:
    return (f"{record.id}: expected {record.expected}, got {record.verdict} "
            f"({record.reason}); console log: {record.paths['console']}")


def by_id(records: Sequence[CellRecord]) -> dict[str, CellRecord]:
    return {r.id: r for r in records}
