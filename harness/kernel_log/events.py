"""Events that matter to an OOM-reaper race hunt: OOM kills, reaped processes, taint
changes, boot banners, reboots and page-poisoning hits. Read line by line, in order."""

from __future__ import annotations

import re
from collections.abc import Callable

from .lines import CPU_LINE
from .model import Event

# Literal words of every event line (the scanner's prefilter looks for them).
EVENT_KEYS = (
    "Killed process",
    "Kill process",
    "oom-kill:",
    "oom_reaper:",
    "Linux version ",
    "Tainted: ",
    "tainting kernel",
    "pagealloc: memory corruption",
)
_KILLED = re.compile(
    r"(?:Out of memory(?: \(oom_kill_allocating_task\))?: |Memory cgroup out of memory: )?"
    r"Kill(?:ed)? process (?P<pid>\d+) \((?P<comm>[^)]*)\)(?P<rest>.*)"
)
_KV = re.compile(r"([\w-]+)[:=]([^,\s]+)")
_REAPED = re.compile(r"oom_reaper: reaped process (?P<pid>\d+) \((?P<comm>[^)]*)\),?(?P<rest>.*)")
BANNER = re.compile(r"^Linux version (\S+)")
_TAINTING = re.compile(r"(?P<what>.*?):? ?tainting kernel")
_POISON_ADDRESS = re.compile(r"\s*([0-9a-f]{8,16}):")


class EventReader:
    """Turns event lines, fed in log order, into `events`."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._pending: Event | None = None  # the oom_kill event of the last oom-kill: line
        self._banners = 0
        self._taint = ""

    def feed(self, i: int, body: str, next_body: Callable[[], str]) -> None:
        """Line `i` (kernel text `body`; `next_body()` is the line after it, or "")."""
        if "oom-kill:" in body:
            fields = dict(_KV.findall(body[body.index("oom-kill:") + 9 :]))
            if "task" in fields:
                fields["comm"] = fields["task"]
            self._pending = Event("oom_kill", i, fields)
            self.events.append(self._pending)
        elif ("Killed process" in body or "Kill process" in body) and (m := _KILLED.search(body)):
            self._killed(i, m)
        elif "oom_reaper:" in body and (m := _REAPED.search(body)):
            fields = {"pid": m["pid"], "comm": m["comm"]}
            fields.update(_KV.findall(m["rest"]))
            self.events.append(Event("oom_reaped", i, fields))
        elif body.startswith("Linux version ") and (m := BANNER.match(body)):
            self._banners += 1
            kind = "boot_banner" if self._banners == 1 else "reboot"
            self.events.append(Event(kind, i, {"version": m.group(1)}))
            self._taint = ""
        elif "pagealloc: memory corruption" in body:
            # The dump of the poisoned bytes follows: its first address says where.
            am = _POISON_ADDRESS.match(next_body())
            fields = {"address": am.group(1)} if am is not None else {}
            self.events.append(Event("page_poison_corruption", i, fields))
        elif "tainting kernel" in body and (m := _TAINTING.search(body)):
            self.events.append(Event("taint", i, {"reason": m["what"].strip()}))
        elif "Tainted: " in body and (cm := CPU_LINE.search(body)) and cm["taint"]:
            self._taint_flags(i, cm)

    def _killed(self, i: int, m: re.Match[str]) -> None:
        # `Out of memory: Killed process` completes the `oom-kill:` line of the same pid.
        fields = {"pid": m["pid"], "comm": m["comm"]}
        fields.update(_KV.findall(m["rest"]))
        if m["rest"].strip().startswith("score"):
            fields["score"] = m["rest"].split()[1]
        pending = self._pending
        if pending is not None and pending.fields.get("pid", m["pid"]) == m["pid"]:
            pending.fields.update(fields)
            self._pending = None
        else:
            self.events.append(Event("oom_kill", i, fields))

    def _taint_flags(self, i: int, cm: re.Match[str]) -> None:
        # Every report repeats the flags: only a change is an event.
        flags = cm["taint"]
        if flags != self._taint:
            self._taint = flags
            self.events.append(
                Event("taint", i, {"flags": flags, "pid": cm["pid"], "comm": cm["comm"]})
            )
