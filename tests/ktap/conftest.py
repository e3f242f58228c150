"""The kernel's KTAP parser, kunit_parser.py, from the Debian 6.1 source tree the kernel
recipes build (kernel.build.source gets it as a kernel build does: apt installs
linux-source-6.1 when missing, and the cache keeps it unpacked), and how its view
compares with ours."""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness import ktap
from harness.errors import HarnessError
from harness.kernel.build.source import resolve_source

SOURCE = "debian:linux-source-6.1"  # the v6.1 recipes' source (configs/kernels.toml)


@pytest.fixture(scope="session")
def kunit_dir() -> Path:
    try:
        tree = resolve_source(SOURCE).tree
    except HarnessError as e:  # no root for apt, no network to the archive
        if os.environ.get("CI"):
            pytest.fail(f"{SOURCE} is needed for the KTAP oracle: {e}")
        pytest.skip(f"{SOURCE} is needed for the KTAP oracle: {e}")
    return tree / "tools" / "testing" / "kunit"


@pytest.fixture(scope="session")
def kunit_parser(kunit_dir: Path) -> Iterator[ModuleType]:
    """The module, imported from the tree (and its kunit_printer) and then forgotten."""
    sys.path.insert(0, str(kunit_dir))
    try:
        yield importlib.import_module("kunit_parser")
    finally:
        sys.path.remove(str(kunit_dir))
        for name in ("kunit_parser", "kunit_printer"):
            sys.modules.pop(name, None)


def oracle(parser: ModuleType, text: str) -> Any:
    with redirect_stdout(io.StringIO()):  # it prints a coloured report as it goes
        return parser.parse_run_tests(text.splitlines())


def kunit_status(test: ktap.KtapTest) -> str:
    """The TestStatus name kunit_parser gives a test of ours (it knows only SKIP among the
    directives; a test that never finished is CRASHED)."""
    if test.result.unfinished:
        return "TEST_CRASHED"
    if test.result is ktap.Result.SKIP:
        return "SKIPPED"
    return "SUCCESS" if test.ok else "FAILURE"


def ours(test: ktap.KtapTest) -> tuple[str, str, list[Any]]:
    return (test.name, kunit_status(test), [ours(t) for t in test.subtests])


def theirs(test: Any) -> tuple[str, str, list[Any]]:
    return (test.name, test.status.name, [theirs(t) for t in test.subtests])


def leaf_counts(doc: ktap.KtapDocument) -> dict[str, int]:
    statuses = [kunit_status(t) for _, t in doc.walk() if not t.subtests]
    return {"passed": statuses.count("SUCCESS"), "failed": statuses.count("FAILURE"),
            "skipped": statuses.count("SKIPPED"), "crashed": statuses.count("TEST_CRASHED")}
