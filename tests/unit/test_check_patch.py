"""`oomrace check-patch`: the output forms against the documented shapes, b4's
(docs/maintainer/review.rst, "Writing an external check script": a JSON array of
{tool, status, summary, url, details}, status pass/warn/fail, [] for nothing to report)
and patchwork's check (docs/usage/overview.rst "Checks": context, description, target
URL, state pending/success/warning/fail), with fake judgements; and the command on mails
that need no build (not a patch, cut short, bad input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import evaluate
from harness.mail.check import Status, check_result, render, status_of, to_b4, to_patchwork
from harness.mail.judge import MailRow
from harness.mail.mbox import MessageRef
from harness.verdict import wilson_interval

from ..conftest import REPO
from .test_mail import _mail

B4_FIELDS = {"tool": str, "status": str, "summary": str, "url": str, "details": str}
B4_REQUIRED = {"tool", "status"}
PATCHWORK_FIELDS = {"state", "context", "description", "target_url"}
REF = MessageRef("p@x", "A Dev", "Mon, 6 Nov 2017 03:36:51 +0000", "[PATCH] mm: fix")


def _row(arch: str, judgement: str, detections: int = 0, trials: int = 4) -> MailRow:
    run = evaluate.Row("mail-p_x", arch, "fix", "clean" if not detections else "corrupted",
                       detections, trials, detections / trials,
                       wilson_interval(detections, trials), "-", judgement, None, "r.json")
    return MailRow("patch", REF, (), arch, judgement, "", run)


def _check_b4_shape(data: object) -> None:
    assert isinstance(data, list)
    for item in data:
        assert isinstance(item, dict) and B4_REQUIRED <= set(item) <= set(B4_FIELDS)
        assert all(isinstance(item[k], B4_FIELDS[k]) for k in item)
        assert item["status"] in ("pass", "warn", "fail")
        assert "\n" not in item["summary"]


def _check_patchwork_shape(data: object) -> None:
    assert isinstance(data, dict) and set(data) == PATCHWORK_FIELDS
    assert data["state"] in ("pending", "success", "warning", "fail")
    assert isinstance(data["context"], str) and " " not in data["context"]
    assert data["target_url"] is None or data["target_url"].startswith("http")


@pytest.mark.parametrize(("rows", "status", "state"), [
    ([_row("aarch64", "fixes it: 95% intervals apart"),
      _row("x86_64", "no judgement: the bug does not show on this arch")], "warn", "warning"),
    ([_row("aarch64", "fixes it: 95% intervals apart")], "pass", "success"),
    ([_row("aarch64", "does not fix it: corruption with the fix", 2)], "fail", "fail"),
    ([MailRow("patch", REF, (), "aarch64", "does not build: mm/a.c:1: error: x", "x", None)],
     "fail", "fail"),
])
def test_the_forms_have_the_documented_shapes(rows: list[MailRow], status: str,
                                              state: str) -> None:
    result = check_result(rows, "v4.14.2", "oom", "https://ci.example.org/1")
    assert result is not None and result.status is Status(status)
    b4 = json.loads(render(result, "b4", "oomrace-v4.14.2"))
    _check_b4_shape(b4)
    assert b4[0]["tool"] == "oomrace" and b4[0]["status"] == status
    assert b4[0]["url"] == "https://ci.example.org/1"
    assert len(b4[0]["details"].splitlines()) == len(rows)
    pw = json.loads(render(result, "patchwork", "oomrace-v4.14.2"))
    _check_patchwork_shape(pw)
    assert pw["state"] == state and pw["description"] == result.summary


def test_a_mail_that_is_not_a_patch_reports_nothing() -> None:
    talk = MailRow("not a patch", REF, (), "-", "not a patch: code in the text", "", None)
    assert check_result([talk], "v4.14.2", "oom") is None
    assert to_b4(None) == []
    _check_patchwork_shape(to_patchwork(None, "oomrace-v4.14.2"))
    assert status_of(_row("aarch64", "inconclusive: more clean batches needed")) is Status.WARN


def _check_patch(stdin: str, *argv: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "check-patch", *argv,
                           "--artifacts", str(tmp_path / "a")], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                               "HOME": str(tmp_path)})


def test_the_command_on_mails_that_need_no_build(tmp_path: Path) -> None:
    talk = _mail("t@x", "Re: [PATCH] mm: fix", "Or rather:\n\n\tx = f(y);\n").split("\n", 1)[1]
    done = _check_patch(talk, tmp_path=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout) == [], done.stderr
    cut = _mail("c@x", "[PATCH] mm: fix", "Changelog.\n---\n")  # an mbox From line too
    done = _check_patch(cut, "--format", "patchwork", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    pw = json.loads(done.stdout)
    _check_patchwork_shape(pw)
    assert pw["state"] == "fail" and pw["context"] == "oomrace-v4.14.2"
    assert pw["description"].startswith("incomplete: the body stops at the `---` line")
    for stdin, expect in (("", "stdin was empty"), ("hello\n", "no Message-ID"),
                          (cut + cut, "got 2")):
        done = _check_patch(stdin, tmp_path=tmp_path)
        assert done.returncode == 2 and done.stdout == "", done.stdout
        assert expect in done.stderr and len(done.stderr.strip().splitlines()) == 1
