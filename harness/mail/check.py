"""`oomrace check-patch`: one patch mail on stdin, judged as `evaluate --mbox` judges a
thread's candidates, printed as a CI check that the maintainers' tools read.

- b4 (`b4 review`'s check commands, docs/maintainer/review.rst "CI check integration"):
  a JSON array of {tool, status, summary, url, details}, status pass, warn or fail; an
  empty array when there is nothing to report (a mail that is not a patch).
- patchwork (its Check: context, description, target URL, state pending, success,
  warning or fail): one object with those fields, ready to POST to /api/patches/ID/checks/.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .judge import MailRow

TOOL = "oomrace"


class Status(Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


_PATCHWORK_STATE = {Status.PASS: "success", Status.WARN: "warning", Status.FAIL: "fail"}
_ORDER = (Status.PASS, Status.WARN, Status.FAIL)


@dataclass(frozen=True)
class CheckResult:
    """The check of one patch: its worst status over the arches, a one-line summary and
    one line per arch."""

    status: Status
    summary: str
    details: str
    url: str | None


def status_of(row: MailRow) -> Status:
    j = row.judgement
    if j.startswith("fixes it"):
        return Status.PASS
    if j.startswith(("does not fix it", "does not apply", "does not build", "incomplete")):
        return Status.FAIL
    return Status.WARN  # no judgement, inconclusive: the evidence does not decide


def _detail(row: MailRow) -> str:
    run = row.run
    counts = f", {run.detections}/{run.trials} batches corrupted" if run else ""
    return f"{row.arch}: {row.judgement}{counts}"


def check_result(rows: Sequence[MailRow], base: str, scenario: str,
                 url: str | None = None) -> CheckResult | None:
    """None when the mail is not a patch: nothing to report."""
    rows = [r for r in rows if r.candidate != "not a patch"]
    if not rows:
        return None
    worst = max((status_of(r) for r in rows), key=_ORDER.index)
    lead = next(r for r in rows if status_of(r) is worst)
    summary = f"{lead.judgement} ({lead.arch}, {scenario} scenario on {base})"
    return CheckResult(worst, summary[:200], "\n".join(map(_detail, rows)), url)


def to_b4(result: CheckResult | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    return [{"tool": TOOL, "status": result.status.value, "summary": result.summary,
             "url": result.url or "", "details": result.details}]


def to_patchwork(result: CheckResult | None, context: str) -> dict[str, Any]:
    if result is None:
        return {"state": "warning", "context": context, "target_url": None,
                "description": "not a patch: nothing to judge"}
    return {"state": _PATCHWORK_STATE[result.status], "context": context,
            "target_url": result.url, "description": result.summary}


def render(result: CheckResult | None, form: str, context: str) -> str:
    data: Any = to_patchwork(result, context) if form == "patchwork" else to_b4(result)
    return json.dumps(data, indent=2)
