"""The pytest plugin of a lab run (`-p harness.lab.plugin`): a line per finished cell with
what is done, running and left; SIGTERM and SIGHUP end a cell like Ctrl-C."""

from __future__ import annotations

import os
import time

import pytest

from .. import signals
from .cells import PLAN_ENV, TOTAL_ENV


class LabProgress:
    """A line per finished cell: done / running / left, and the failures so far."""

    def __init__(self, total: int, config: pytest.Config) -> None:
        self.total = total
        self.config = config
        self.running: set[str] = set()
        self.done = 0
        self.failures: list[str] = []
        self.started = time.monotonic()

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, flush=True)

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running.add(nodeid)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        finished = report.when == "call" or (report.when == "setup" and not report.passed)
        if not finished:
            return
        self.running.discard(report.nodeid)
        self.done += 1
        cid = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
        props = dict(report.user_properties)
        if not report.passed:
            self.failures.append(cid)
        figures = ""
        if props.get("trials") not in (None, "0", 0):
            figures = (f", rate {props.get('rate')} [{props.get('ci95_low')}, "
                       f"{props.get('ci95_high')}] over {props.get('trials')} batches")
        left = max(0, self.total - self.done - len(self.running))
        elapsed = time.monotonic() - self.started
        self._write(
            f"[lab {self.done}/{self.total} done, {len(self.running)} running, {left} left, "
            f"{elapsed / 60:.1f} min] {'PASS' if report.passed else 'FAIL'} {cid}: "
            f"{props.get('verdict', report.outcome)} (expected {props.get('expected', '?')})"
            f"{figures}" + (f" | failures so far: {', '.join(self.failures)}"
                            if self.failures else ""))


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(PLAN_ENV):
        return
    signals.install()  # SIGTERM/SIGHUP end a cell like Ctrl-C: guest stopped, logs kept
    if not hasattr(config, "workerinput"):
        total = int(os.environ.get(TOTAL_ENV, "0") or 0)
        config.pluginmanager.register(LabProgress(total, config), "oomrace-lab-progress")
