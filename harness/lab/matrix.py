"""The matrix language: a TOML file of [[cell]] entries, checked (with the line of anything
wrong) and expanded into cells.

AXES is the one table of what multiplies cells: each value of each axis makes cells (the
product), and the cell id, the repro command, the cell record, its JUnit properties and
the report's cell column are all derived from it. To add an axis, add an Axis here (and
a Cell field if the value is new to a cell).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import re
import tomllib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .. import stress
from ..accel import ACCELS
from ..arches import ALIASES, ARCHES
from ..errors import UsageError
from ..inputs import positive_number, read_regular
from ..kernel.build.recipes import recipe_names
from ..machine import MachineOptions, machine_options
from ..selftests.suite import CELL_BUDGET_S, LAB_SCENARIO
from .labels import image_labels, kernel_label

EXPECTED = ("clean", "corrupted")
# Cells in one matrix at most: a night of that many runs takes weeks already; past it the
# expansion itself (`repeats = 1000000000`) would take minutes and gigabytes.
MAX_CELLS = 10_000
TOP_KEYS = ("name", "description", "defaults", "cell")
MAX_MATRIX_BYTES = 4 << 20  # a matrix is a page of TOML; more is a wrong file
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?$")


class MatrixError(UsageError):
    """A matrix file that cannot be run; names the file, the line and the reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


# --- where things are in the file ------------------------------------------------------


class _Lines:
    """Where tables and keys are in a TOML text (tomllib gives values, not lines)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (table name, index among [[name]] entries, first line, last line), 1-based lines
        self.sections: list[tuple[str, int, int, int]] = []
        counts: dict[str, int] = {}
        current = ("", 0, 1)
        in_string = False
        for number, line in enumerate(self.lines, start=1):
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_string = not in_string
            match = None if in_string else _HEADER.match(line)
            if match is None:
                continue
            name = match.group(2).strip().strip('"')
            if "." in name:  # [cell.expected]: a sub-table of the current entry
                continue
            self.sections.append((current[0], current[1], current[2], number - 1))
            index = 0
            if match.group(1) == "[[":
                index = counts.get(name, 0)
                counts[name] = index + 1
            current = (name, index, number)
        self.sections.append((current[0], current[1], current[2], len(self.lines)))

    def _section(self, table: str, index: int) -> tuple[int, int] | None:
        for name, i, first, last in self.sections:
            if name == table and i == index:
                return first, last
        return None

    def header(self, table: str, index: int = 0) -> int | None:
        found = self._section(table, index)
        return found[0] if found else None

    def key(self, table: str, index: int, key: str) -> int | None:
        """The line of `key` in the table (or [[table]] entry number `index`)."""
        found = self._section(table, index)
        if found is None:
            return None
        first, last = found
        quoted = re.escape(key)
        plain = re.compile(rf"^\s*(\"{quoted}\"|'{quoted}'|{quoted})\s*[=.]")
        sub = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\.\s*{quoted}\s*\]")
        for number in range(first, last + 1):
            line = self.lines[number - 1]
            if plain.match(line) or (table and sub.match(line)):
                return number
        return first if table else None


@dataclass
class _Where:
    lines: _Lines
    path: Path
    table: str
    index: int

    def line(self, key: str | None = None) -> int | None:
        if key is None:
            return self.lines.header(self.table, self.index)
        found = self.lines.key(self.table, self.index, key)
        if found is None and not self.table:  # a top-level table: its header
            found = self.lines.header(key, 0)
        return found

    def error(self, key: str | None, reason: str) -> MatrixError:
        return MatrixError(self.path, self.line(key), reason)


def _describe(table: str, index: int) -> str:
    return f"[[{table}]] #{index + 1}" if table == "cell" else f"[{table}]"


# --- checked values ------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], valid: Sequence[str], where: _Where,
                what: str) -> None:
    for key in table:
        if key not in valid:
            raise where.error(key, f"unknown key {key!r} in {what}; valid keys: "
                                   f"{', '.join(valid)}")


def _int(value: Any, key: str, where: _Where, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise where.error(key, f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _number(value: Any, key: str, where: _Where) -> float:
    # TOML reads `nan` and `inf` as floats; positive_number refuses them with the rest.
    if isinstance(value, int | float):
        with contextlib.suppress(UsageError):
            return positive_number(value, key)
    raise where.error(key, f"{key} must be a number > 0 (finite, in seconds), not {value!r}")


def one_or_more(value: Any, key: str, where: _Where, what: str = "value") -> list[Any]:
    """An axis as written: one value or a non-empty list of distinct values."""
    items = value if isinstance(value, list) else [value]
    if not items or (what == "name" and not all(isinstance(v, str) for v in items)):
        raise where.error(key, f"{key} must be a {what} or a non-empty list of {what}s")
    if len({repr(v) for v in items}) != len(items):
        raise where.error(key, f"{key} lists a {what} twice: {items}")
    return list(items)


def _names(value: Any, key: str, where: _Where) -> list[Any]:
    return one_or_more(value, key, where, "name")


def scenarios() -> list[str]:
    return ["smoke", *(s.value for s in stress.Scenario), LAB_SCENARIO]


def is_stress(scenario: str) -> bool:
    """Whether a scenario runs the stress program (not smoke, not a kselftest suite)."""
    return scenario in {s.value for s in stress.Scenario}


def _arch_name(name: str, where: _Where, recipes: Sequence[str]) -> str:
    canonical = ALIASES.get(name, name)
    if canonical not in ARCHES:
        raise where.error("arch", f"unknown arch {name!r}; valid arches: {', '.join(ARCHES)}")
    return canonical


def _kernel_name(name: str, where: _Where, recipes: Sequence[str]) -> str:
    if name == "debian" or name in recipes:
        return name
    if "/" in name:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = where.path.parent / path
        if path.is_file():
            return str(path.resolve())
        raise where.error("kernel", f"kernel image {name} does not exist")
    raise where.error("kernel", f"unknown kernel {name!r}; valid kernels: "
                                f"{', '.join(['debian', *recipes])}, or a path to an image")


def _scenario_name(name: str, where: _Where, recipes: Sequence[str]) -> str:
    if name not in scenarios():
        raise where.error("scenario", f"unknown scenario {name!r}; valid scenarios: "
                                      f"{', '.join(scenarios())}")
    return name


# --- the axes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """A matrix key whose values multiply the cells (a name or a list of names)."""

    key: str  # in the matrix file, the cell record and the JUnit properties
    field: str  # the Cell field it fills
    check: Callable[[Any, _Where, Sequence[str]], Any]  # one value (recipes given)
    label: Callable[[Any], str]  # its part of the cell id
    flag: str  # the `oomrace run` option that sets it, for the repro command
    many: Callable[[Any, str, _Where], list[Any]] = _names  # the values as written


AXES: tuple[Axis, ...] = (
    Axis("arch", "arch", _arch_name, str, "--arch"),
    Axis("kernel", "kernel", _kernel_name, kernel_label, "--kernel"),
    Axis("scenario", "scenario", _scenario_name, str, "--scenario"),
)
# Keys that set one value for every cell of an entry (an axis of the same key wins).
SETTING_KEYS = ("repeats", "expected", "iterations", "duration", "cpus", "memory",
                "boot_timeout", "timeout", "seed", "writers", "accel", "append", "cpu",
                "description")


def cell_keys() -> tuple[str, ...]:
    """The keys a [[cell]] may have: every axis, then the settings."""
    return tuple(dict.fromkeys([*(a.key for a in AXES), *SETTING_KEYS]))


CELL_KEYS = cell_keys()


# --- cells -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One test of the night: a guest booted with a kernel, running a scenario once."""

    arch: str
    kernel: str
    scenario: str
    repeat: int = 0
    expected: str = "clean"
    iterations: int = 0
    duration_s: float = 30.0
    cpus: int = stress.STRESS_CPUS
    memory_mb: int = 1024
    boot_timeout: float = 300.0
    timeout: float = 900.0
    seed: int = 0
    writers: int | None = None
    accel: str = "tcg"
    append: tuple[str, ...] = ()  # extra kernel command line (`oomrace run --append`)
    cpu: str | None = None  # QEMU CPU model (`--cpu`); None: by arch and kernel version
    line: int = 0  # the matrix entry this cell came from
    description: str = ""
    # The kernel's part of the id when its image's file name is shared with another
    # image of the matrix (see image_labels); "" for the usual label.
    kernel_label: str = ""

    @property
    def id(self) -> str:
        labels = {"kernel": self.kernel_label} if self.kernel_label else {}
        return cell_id(self.axis_values(), self.repeat, labels)

    def axis_values(self) -> dict[str, Any]:
        """The cell's value of each axis, by the axis's key."""
        return {a.key: getattr(self, a.field) for a in AXES}

    @property
    def stress(self) -> bool:
        return is_stress(self.scenario)

    def options(self) -> MachineOptions:
        return machine_options(cpus=self.cpus, memory_mb=self.memory_mb, accel=self.accel,
                               boot_timeout=self.boot_timeout, cmdline_extra=self.append,
                               cpu=self.cpu)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["append"] = tuple(values.get("append") or ())  # a JSON list
        return cls(**values)


def cell_id(axis_values: Mapping[str, Any], repeat: int,
            labels: Mapping[str, str] | None = None) -> str:
    """arch-kernel-scenario-rN: each axis's label in AXES order (or the one `labels`
    gives for its key), then the repeat."""
    given = labels or {}
    parts = [given.get(a.key) or a.label(axis_values[a.key]) for a in AXES]
    return "-".join([*parts, f"r{repeat}"])


def report_heading() -> str:
    """The report's cell column: what an id is made of."""
    return f"cell ({'-'.join(a.key for a in AXES)}-repeat)"


# --- parsing and expanding -----------------------------------------------------------------


@dataclass(frozen=True)
class Matrix:
    path: Path
    name: str
    cells: tuple[Cell, ...]
    sha256: str
    description: str = ""


def parse_matrix(text: str, path: Path | str = "<matrix>",
                 recipes: Sequence[str] | None = None) -> Matrix:
    """Check and expand a matrix; MatrixError (with the line) for anything that is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"line (\d+)", str(e))
        raise MatrixError(path, int(match.group(1)) if match else None,
                          f"not valid TOML: {e}") from None
    if recipes is None:
        recipes = recipe_names()
    lines = _Lines(text)
    top = _Where(lines, path, "", 0)
    _check_keys(data, TOP_KEYS, top, "the matrix (top level)")
    defaults = data.get("defaults", {})
    dwhere = _Where(lines, path, "defaults", 0)
    if not isinstance(defaults, dict):
        raise top.error("defaults", "defaults must be a table: [defaults]")
    _check_keys(defaults, [k for k in cell_keys() if k != "description"], dwhere,
                "[defaults]")
    entries = data.get("cell", [])
    if not isinstance(entries, list) or not entries:
        raise MatrixError(path, top.line("cell"),
                          "the matrix has no cells: add [[cell]] entries")
    cells = _expand_all(entries, defaults, lines, path, dwhere, recipes)
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise top.error("name", "name must be a string")
    description = data.get("description", "")
    return Matrix(path=path, name=name, cells=tuple(cells), description=str(description),
                  sha256=hashlib.sha256(text.encode()).hexdigest())


def _expand_all(entries: list[Any], defaults: Mapping[str, Any], lines: _Lines, path: Path,
                dwhere: _Where, recipes: Sequence[str]) -> list[Cell]:
    cells: list[Cell] = []
    seen: dict[str, int] = {}
    checked: list[_Entry] = []
    for index, entry in enumerate(entries):
        where = _Where(lines, path, "cell", index)
        if not isinstance(entry, dict):  # `cell = [1, 2]` instead of [[cell]] tables
            raise where.error(None, "each cell must be a table: write [[cell]] entries")
        _check_keys(entry, cell_keys(), where, _describe("cell", index))
        checked.append(_Entry(entry, defaults, where, dwhere))
    labels = image_labels([k for e in checked
                           for k in _axis_values(e, recipes).get("kernel", [])])
    for entry_ in checked:
        where = entry_.where
        for cell in _expand(entry_, recipes, labels, room=MAX_CELLS - len(cells)):
            if cell.id in seen:
                raise where.error(None, f"cell {cell.id} is already in the matrix "
                                        f"(line {seen[cell.id]}); each cell may appear once")
            seen[cell.id] = cell.line
            cells.append(cell)
    return cells


@dataclass(frozen=True)
class _Entry:
    """A [[cell]] entry with [defaults] behind it: each value with where it was written."""

    values: Mapping[str, Any]
    defaults: Mapping[str, Any]
    where: _Where
    dwhere: _Where

    def get(self, key: str) -> tuple[Any, _Where] | None:
        if key in self.values:
            return self.values[key], self.where
        if key in self.defaults:
            return self.defaults[key], self.dwhere
        return None

    def need(self, key: str) -> tuple[Any, _Where]:
        found = self.get(key)
        if found is None:
            raise self.where.error(None, f"{_describe('cell', self.where.index)} has no "
                                         f"{key} (and [defaults] gives none)")
        return found

    def read(self, key: str, default: Any, check: Callable[[Any, str, _Where], Any]) -> Any:
        """A setting's checked value; an axis of the same key sets the field instead."""
        found = None if any(a.key == key for a in AXES) else self.get(key)
        return default if found is None else check(found[0], key, found[1])


@dataclass(frozen=True)
class _Settings:
    """The settings of an entry that do not depend on the cell's axis values."""

    repeats: int
    iterations: int
    duration_s: float
    memory_mb: int
    boot_timeout: float
    seed: int | None
    accel: str
    append: tuple[str, ...]
    cpu: str | None
    description: str


def _append(value: Any, key: str, where: _Where) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip()
                                               for v in values):
        raise where.error(key, f"append must be a kernel argument or a list of them, "
                               f"not {value!r}")
    return tuple(values)


def _cpu(value: Any, key: str, where: _Where) -> str:
    if not isinstance(value, str) or not value.strip() or value.startswith("-"):
        raise where.error(key, f"cpu must be a QEMU CPU model name such as cortex-a57, "
                               f"not {value!r}")
    return value


def _accel(value: Any, key: str, where: _Where) -> str:
    if value not in ACCELS:
        raise where.error(key, f"accel must be one of {', '.join(ACCELS)}, not {value!r}")
    return str(value)


def _settings(entry: _Entry) -> _Settings:
    def at_least(minimum: int) -> Callable[[Any, str, _Where], int]:
        return lambda value, key, where: _int(value, key, where, minimum)

    return _Settings(
        repeats=entry.read("repeats", 1, at_least(1)),
        iterations=entry.read("iterations", 0, at_least(0)),
        duration_s=entry.read("duration", 30.0, _number),
        memory_mb=entry.read("memory", 1024, at_least(128)),
        boot_timeout=entry.read("boot_timeout", 300.0, _number),
        seed=entry.read("seed", None, at_least(0)),
        accel=entry.read("accel", "tcg", _accel),
        append=entry.read("append", (), _append),
        cpu=entry.read("cpu", None, _cpu),
        description=entry.read("description", "", lambda value, key, where: str(value)),
    )


def _axis_values(entry: _Entry, recipes: Sequence[str]) -> dict[str, list[Any]]:
    """Each axis's checked values, by its Cell field, in AXES order."""
    values: dict[str, list[Any]] = {}
    for axis in AXES:
        value, where = entry.need(axis.key)
        values[axis.field] = [axis.check(v, where, recipes)
                              for v in axis.many(value, axis.key, where)]
    return values


def _expand(entry: _Entry, recipes: Sequence[str],
            labels: Mapping[str, str] | None = None, room: int = MAX_CELLS) -> list[Cell]:
    """The product of the entry's axes, each combination `repeats` times (`labels`: the
    kernel labels of image_labels); MatrixError when that is more than `room` cells (what
    MAX_CELLS leaves after the entries before)."""
    axes = _axis_values(entry, recipes)
    settings = _settings(entry)
    combinations = math.prod(len(values) for values in axes.values())
    if combinations * settings.repeats > room:
        found = entry.get("repeats")
        raise (found[1] if found else entry.where).error(
            "repeats" if found else None,
            f"{_describe('cell', entry.where.index)} makes {combinations * settings.repeats} "
            f"cells ({combinations} combinations of its axes x repeats {settings.repeats}); "
            f"a matrix holds at most {MAX_CELLS}: lower repeats or split the matrix")
    expected_value, expected_where = entry.get("expected") or ("clean", entry.where)
    cells = []
    for combination in itertools.product(*axes.values()):
        values = {**asdict(settings), **dict(zip(axes, combination, strict=True))}
        del values["repeats"], values["seed"]
        values["expected"] = _expected_for(expected_value, values["arch"], expected_where,
                                           axes["arch"], strict=expected_where is entry.where)
        values.update(_dependent(entry, values))
        label = (labels or {}).get(values["kernel"], "")
        for repeat in range(settings.repeats):
            cell = Cell(**values, repeat=repeat, line=entry.where.line() or 0,
                        kernel_label=label)
            seed = (settings.seed + repeat if settings.seed is not None
                    else zlib.crc32(cell.id.encode()) % (1 << 31))  # the same every night
            cells.append(replace(cell, seed=seed))
    return cells


def _dependent(entry: _Entry, values: Mapping[str, Any]) -> dict[str, Any]:
    """cpus, writers and timeout, whose defaults and limits depend on the scenario."""
    smoke = not is_stress(values["scenario"])
    if smoke and values["expected"] == "corrupted":
        _, where = entry.get("expected") or (None, entry.where)
        raise where.error("expected", f"{values['arch']} {values['kernel']} "
                                      f"{values['scenario']} cannot be expected to corrupt: "
                                      "the scenario runs no stress")
    cpus = entry.read("cpus", 2 if smoke else stress.STRESS_CPUS,
                      lambda value, key, where: _int(value, key, where, 1))
    writers = None
    found = entry.get("writers")
    if found is not None:
        writers = _int(found[0], "writers", found[1], 1)
        if writers >= cpus and not smoke:
            raise found[1].error("writers", f"writers ({writers}) must be fewer than the "
                                            f"guest's cpus ({cpus}): one vCPU runs the reaper")
    run_s = (CELL_BUDGET_S if values["scenario"] == LAB_SCENARIO
             else 60.0 if smoke else values["duration_s"])
    budget = values["boot_timeout"] + run_s + 120.0
    timeout = budget + 120.0
    found = entry.get("timeout")
    if found is not None:
        timeout = _number(found[0], "timeout", found[1])
        if timeout < budget:
            raise found[1].error("timeout", f"timeout {timeout:g} s is shorter than what the "
                                            f"cell needs: boot_timeout + {run_s:g} s of run "
                                            f"+ 120 s = "
                                            f"{budget:g} s")
    return {"cpus": cpus, "writers": writers, "timeout": timeout}


def _expected_for(value: Any, arch: str, where: _Where, arches: Sequence[str],
                  strict: bool = True) -> str:
    """The outcome for `arch`; `strict` (a table in the entry itself) also refuses arches
    the entry does not run, while a table in [defaults] may name more."""
    if isinstance(value, dict):
        for key, outcome in value.items():
            canonical = ALIASES.get(key, key)
            if canonical not in ARCHES:
                raise where.error("expected", f"expected names unknown arch {key!r}; valid "
                                              f"arches: {', '.join(ARCHES)}")
            if strict and canonical not in arches:
                raise where.error("expected", f"expected names arch {key!r}, which this entry "
                                              f"does not run (it runs {', '.join(arches)})")
            if outcome not in EXPECTED:
                raise where.error("expected", f"expected outcome for {key} must be clean or "
                                              f"corrupted, not {outcome!r}")
        byarch = {ALIASES.get(k, k): v for k, v in value.items()}
        if arch not in byarch:
            raise where.error("expected", f"expected gives no outcome for {arch}")
        return str(byarch[arch])
    if value not in EXPECTED:
        raise where.error("expected", f"expected must be clean or corrupted (or a table of "
                                      f"them by arch), not {value!r}")
    return str(value)


def load_matrix(path: Path) -> Matrix:
    data = read_regular(path, "matrix", MAX_MATRIX_BYTES,
                        "give the matrix's .toml file (see configs/nightly.toml)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MatrixError(path, None, f"not UTF-8 text (byte {e.start}); save the matrix "
                                      "as UTF-8") from None
    return parse_matrix(text, path)
