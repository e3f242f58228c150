"""The cells of a lab night as pytest tests: `oomrace lab` writes the night's plan.json and
runs this file (launch.CELLS_MODULE, by its path inside the installed package, so a wheel
has it too) with $OOMRACE_LAB_PLAN pointing at it; no `pytest tests` collects it. Each
cell is one test id, e.g. test_cell[aarch64-v6.1-reaper-fullmm-mrelease-r0], so -k,
--lf and --junitxml work."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.lab.cells import plan_from_env
from harness.lab.engine import run_cell
from harness.lab.matrix import Cell
from harness.lab.record import failure_message, junit_properties

PLAN = plan_from_env()
CELLS = PLAN.cells if PLAN is not None else []


@pytest.mark.parametrize("cell", [
    pytest.param(c, id=c.id, marks=[pytest.mark.timeout(c.timeout), pytest.mark.guest])
    for c in CELLS
])
def test_cell(cell: Cell, record_property: Callable[[str, object], None]) -> None:
    assert PLAN is not None
    record = run_cell(cell, PLAN)
    for name, value in junit_properties(record):
        record_property(name, value)
    if not record.passed:
        pytest.fail(failure_message(record), pytrace=False)
