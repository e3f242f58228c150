"""What the parser finds: crash reports and notable events (typed; dicts only in
`to_dict`, the JSON edge)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .symbols import SymbolizedFrame


@dataclass(frozen=True)
class Report:
    """One crash report found in the log.

    `garbled` (syzkaller's "corrupted"; not the verdict) says the report is cut or mixed
    with other lines so its title cannot be trusted; `garbled_reason` says why ("" when
    it is not garbled). `symbolized` holds its frames' file:line once a symbolizer with
    the kernel's vmlinux has seen it (`harness.symbolize`); the parser leaves it empty.
    """

    title: str
    type: str
    arch: str | None
    guilty_function: str | None
    guilty_file: str | None
    frames: tuple[str, ...]
    cpu: int | None
    pid: int | None
    comm: str | None
    taint: str | None
    garbled: bool
    garbled_reason: str
    lines: tuple[str, ...]
    start_line: int
    symbolized: tuple[SymbolizedFrame, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "type": self.type,
            "arch": self.arch,
            "guilty_function": self.guilty_function,
            "guilty_file": self.guilty_file,
            "frames": list(self.frames),
            "cpu": self.cpu,
            "pid": self.pid,
            "comm": self.comm,
            "taint": self.taint,
            "garbled": self.garbled,
            "garbled_reason": self.garbled_reason,
            "lines": list(self.lines),
            "start_line": self.start_line,
            "symbolized": [f.to_dict() for f in self.symbolized],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report `to_dict` wrote (its keys are the field names); one written before
        `garbled` was named so has `corrupted` instead, and no reason; one written before
        reports were symbolized has no `symbolized`."""
        if "garbled" not in data and "corrupted" in data:
            data = {**data, "garbled": data["corrupted"], "garbled_reason": ""}
        values: dict[str, Any] = {
            f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
            for f in fields(cls) if f.name != "symbolized"
        }
        frames = tuple(SymbolizedFrame.from_dict(d) for d in data.get("symbolized") or ())
        return cls(**values, symbolized=frames)


@dataclass
class Event:
    """A notable non-crash line: OOM kill, reaped process, taint, boot banner, reboot."""

    kind: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, "fields": dict(self.fields)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(str(data["kind"]), int(data["line"]), dict(data.get("fields") or {}))


@dataclass
class LogAnalysis:
    """Everything `parse` found, in log order."""

    reports: list[Report]
    events: list[Event]

    @property
    def crashed(self) -> bool:
        return bool(self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reports": [r.to_dict() for r in self.reports],
            "events": [e.to_dict() for e in self.events],
        }
