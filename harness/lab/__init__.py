"""Nightly lab runs: a matrix of cells (arch x kernel x scenario x repeat), each run as one
pytest test in parallel with pytest-xdist, with a summary, JUnit XML, an HTML report and a
comparison against previous nights.

    oomrace lab configs/nightly.toml --out lab/2024-05-01 --history lab [-j N] [--shard i/N]
    oomrace lab merge shard-1 shard-2 --out lab/2024-05-01

The matrix file (see configs/nightly.toml for the format) is checked before anything is
built: an unknown key or an impossible cell is refused with its line. The runner builds
what the selected cells need (one thread per arch, each kernel resolved once), writes
``plan.json`` into the night's folder and runs ``harness/lab/pytest_cells.py`` (inside
the package, so an installed wheel runs it too) under pytest with ``-n N``; each cell
writes ``cells/<id>/cell.json`` (and the run's logs) as soon as it ends, so an
interrupted night keeps every finished cell. The night's ``summary.json``,
``junit.xml`` and ``report.html`` are then made from those records, which is also how
``merge`` joins shard outputs.

The modules: ``matrix`` (the language and AXES, from which ids, repro commands, records,
JUnit properties and the report's cell column are derived; ``labels`` the kernel's part of
an id), ``record`` (a cell's record and JSON; ``checked`` its fields' types), ``cells``
(the plan, what the cells need, their repro records), ``engine`` (one cell's skeleton
around its guest part, and the local engine; ``lava`` is the other), ``night`` (summary,
comparison, history, merge; ``safecopy`` the merge's copy of a shard, which follows no
link), ``junit`` (junit.xml), ``report`` (report.html), ``launch`` (running a night under
pytest), ``pytest_cells`` (the cells as pytest tests) and ``plugin`` (the progress lines
of that pytest run).
"""

from __future__ import annotations

from .cells import Plan, build_key, plan_from_env, prepare, repro_record
from .engine import Engine, LocalEngine, run_cell
from .junit import junit_xml
from .launch import default_jobs, main, parse_shard, shard_cells

# AXES is not re-exported: it is read from harness.lab.matrix at call time.
from .matrix import (
    CELL_KEYS,
    Axis,
    Cell,
    Matrix,
    MatrixError,
    cell_id,
    load_matrix,
    parse_matrix,
)
from .night import (
    RATE_SHIFT_ALPHA,
    Change,
    Comparison,
    NightSummary,
    compare,
    exit_code,
    finish_night,
    history_nights,
    holm_rejections,
    make_summary,
    merge,
    rate_shift_p,
    rate_shifts,
    read_summary,
)
from .record import (
    CellRecord,
    cell_dir,
    failure_message,
    junit_properties,
    outcome,
    read_records,
)
from .repro_cmd import repro_command

__all__ = [
    "CELL_KEYS", "RATE_SHIFT_ALPHA", "Axis", "Cell", "CellRecord", "Change", "Comparison",
    "Engine", "LocalEngine", "Matrix", "MatrixError", "NightSummary", "Plan", "build_key",
    "cell_dir", "cell_id", "compare", "default_jobs", "exit_code", "failure_message",
    "finish_night", "history_nights", "holm_rejections", "junit_properties", "junit_xml",
    "load_matrix", "main", "make_summary", "merge", "outcome", "parse_matrix", "parse_shard",
    "plan_from_env", "prepare", "rate_shift_p", "rate_shifts", "read_records", "read_summary",
    "repro_command", "repro_record", "run_cell", "shard_cells",
]
