"""A night as JUnit XML (junit.xml): one <testcase> per cell, named as pytest names the
cell, with its figures as <property>s; a cell that did not run is <skipped> with why."""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from .record import failure_message, junit_properties

if TYPE_CHECKING:
    from .night import NightSummary

JUNIT_CLASS = "harness.lab.pytest_cells"  # as pytest names the cells module


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
        ET.SubElement(case, "skipped", {"message": f"not run: {summary.why_not_run(cid)}"})
    ET.indent(suites)
    return ET.ElementTree(suites)
