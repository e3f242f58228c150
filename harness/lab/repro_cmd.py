"""The command that runs a lab cell again: `oomrace run` with the cell's axes and settings
(a kselftest cell: the pytest that runs the same suite)."""

from __future__ import annotations

import shlex

from ..selftests.suite import LAB_SCENARIO
from . import matrix
from .matrix import Cell

# The `oomrace run` options of a cell's settings, for its repro command: (field, flag,
# format); the second group only for stress scenarios. An axis's own flag comes first.
_REPRO_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("cpus", "--cpus", ""), ("memory_mb", "--memory", ""), ("accel", "--accel", ""),
    ("boot_timeout", "--boot-timeout", "g"), ("cpu", "--cpu", ""))
_REPRO_STRESS: tuple[tuple[str, str, str], ...] = (
    ("iterations", "--iterations", ""), ("duration_s", "--duration", "g"),
    ("seed", "--seed", ""), ("writers", "--writers", ""))


def repro_command(cell: Cell) -> str:
    """The `oomrace run` command line that runs this cell again (a kselftest cell: the
    pytest that runs the same suite, one result per selftest)."""
    if cell.scenario == LAB_SCENARIO:
        return (f"pytest tests/guest/test_kselftest_vm.py -m '' --oomrace-arch {cell.arch} "
                f"--oomrace-kernel {cell.kernel}")
    argv = ["oomrace", "run"]
    for axis in matrix.AXES:  # read at call time: AXES is the one table of axes
        argv += [axis.flag, str(getattr(cell, axis.field))]
    on_axes = {a.field for a in matrix.AXES}
    settings = _REPRO_SETTINGS + (_REPRO_STRESS if cell.stress else ())
    for name, flag, spec in settings:
        value = getattr(cell, name)
        if name not in on_axes and value is not None:
            argv += [flag, format(value, spec)]
    for argument in cell.append:
        argv += ["--append", shlex.quote(argument)]
    return " ".join(argv)
