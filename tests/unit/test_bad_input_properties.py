"""Property tests (hypothesis): no input to the matrix loader, the recipe loader,
parse-log, the bisect state reader or the CLI's numbers ends in a traceback; each is
either accepted or refused with the harness's own error (issue 10)."""

from __future__ import annotations

import io
import json
import math
import subprocess
import tempfile
from contextlib import redirect_stderr, redirect_stdout, suppress
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")  # in the dev extras (pip install -e .[dev])
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness import bisect, cli, kernel_log, lab  # noqa: E402
from harness.errors import UsageError  # noqa: E402
from harness.inputs import positive_number  # noqa: E402
from harness.kernel.build import recipes  # noqa: E402

RECIPES = ["v6.1", "v6.1-reaper-fullmm"]
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# TOML values that have broken or nearly broken checks: nan, inf, huge, wrong types.
TOML_VALUES = st.sampled_from([
    "nan", "inf", "-inf", "0", "-1", "1", "8", "1e999", "1.5", "true", '""', '"x"',
    '"debian"', '"x86_64"', '"aarch64"', '"all"', '"mrelease"', '"smoke"', '"clean"',
    '"corrupted"', '"../x"', '"{arch}"', "[]", "[1, 2]", '["x86_64", "x86_64"]',
    '{ aarch64 = "corrupted" }', '{ sparc = "clean" }', "{}", "1979-05-27",
])
KEYS = st.sampled_from([*lab.CELL_KEYS, "colour", "cell", "defaults", "name"])


@st.composite
def matrices(draw: st.DrawFn) -> str:
    lines = [f"{draw(KEYS)} = {draw(TOML_VALUES)}" for _ in range(draw(st.integers(0, 2)))]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from(["[[cell]]", "[defaults]", "[cell]", "[x]"])))
        if draw(st.booleans()):  # a cell that is valid so far: the values decide
            lines += ['arch = "x86_64"', 'kernel = "debian"', 'scenario = "mrelease"']
        keys = draw(st.lists(KEYS, max_size=6, unique=True))
        lines += [f"{key} = {draw(TOML_VALUES)}" for key in keys]
    return "\n".join(lines) + "\n"


@FAST
@given(matrices())
def test_matrix_loader_accepts_or_refuses_structured_input(text: str) -> None:
    try:
        matrix = lab.parse_matrix(text, Path("m.toml"), recipes=RECIPES)
    except lab.MatrixError:
        return
    for cell in matrix.cells:
        assert math.isfinite(cell.duration_s) and cell.duration_s > 0
        assert math.isfinite(cell.timeout) and math.isfinite(cell.boot_timeout)


NUMBERS = st.one_of(st.sampled_from(["nan", "inf", "-inf", "+inf", "1e999", "-0.0", "0"]),
                   st.floats(allow_nan=False, allow_infinity=False).map(repr),
                   st.integers(-10, 10**6).map(str))


@FAST
@given(st.dictionaries(st.sampled_from(["duration", "boot_timeout", "timeout", "iterations",
                                        "cpus", "memory", "repeats", "seed", "writers"]),
                       NUMBERS, min_size=1, max_size=3),
       st.booleans())
def test_matrix_numbers_are_finite_or_refused(values: dict[str, str], in_defaults: bool) -> None:
    body = "\n".join(f"{k} = {v}" for k, v in values.items())
    cell = '[[cell]]\narch = "x86_64"\nkernel = "debian"\nscenario = "mrelease"\n'
    text = f"[defaults]\n{body}\n{cell}" if in_defaults else f"{cell}{body}\n"
    try:
        matrix = lab.parse_matrix(text, Path("m.toml"), recipes=RECIPES)
    except lab.MatrixError:
        return
    for c in matrix.cells:
        for seconds in (c.duration_s, c.boot_timeout, c.timeout):
            assert math.isfinite(seconds) and seconds > 0


@FAST
@given(st.text())
def test_matrix_loader_on_any_text(text: str) -> None:
    with suppress(lab.MatrixError):
        lab.parse_matrix(text, Path("m.toml"), recipes=RECIPES)


@FAST
@given(st.binary(max_size=300))
def test_matrix_file_of_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "m.toml"
    path.write_bytes(data)
    with suppress(lab.MatrixError):
        lab.load_matrix(path)


RECIPE_VALUES = st.sampled_from([
    '"debian:linux-source-6.1"', '""', "1", "[]", '["{arch}.config"]', '["{foo}"]',
    '["{"]', '["}"]', '["{0}"]', '["{arch.x}"]', '["{arch!r}"]', "[1]", '"tinyconfig"',
    '"r"', '"loop"', "{}",
])
RECIPE_KEYS = st.sampled_from(["source", "base", "fragments", "patches", "cmdline",
                               "description", "extends", "colour"])


@st.composite
def recipe_files(draw: st.DrawFn) -> str:
    lines = []
    for name in draw(st.lists(st.sampled_from(["r", "loop", "base"]), max_size=3)):
        lines.append(f"[recipe.{name}]")
        for _ in range(draw(st.integers(0, 5))):
            lines.append(f"{draw(RECIPE_KEYS)} = {draw(RECIPE_VALUES)}")
    return "\n".join(lines) + "\n"


@FAST
@given(st.one_of(recipe_files(), st.text()))
def test_recipe_loader_accepts_or_refuses(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kernels.toml"
    path.write_text(text)
    try:
        recipe = recipes.load_recipe("r", path)
        recipe.fragment_paths("aarch64")
    except UsageError:
        pass


@FAST
@given(st.binary(max_size=4000))
def test_parse_log_on_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(data)
    analysis = kernel_log.parse_file(path)
    json.dumps(analysis.to_dict())
    out = io.StringIO()
    with redirect_stdout(out):
        assert kernel_log.parse_log_main(str(path), as_json=True) in (0, 1)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@st.composite
def bisect_states(draw: st.DrawFn) -> Any:
    """Random JSON, or a state whose fields are replaced by random JSON."""
    if draw(st.booleans()):
        return draw(JSON)
    state: dict[str, Any] = {
        "version": 1, "config": {"repo": "/tmp/r", "good": "a", "bad": "b", "arch": "x86_64",
                                 "artifacts": "a"},
        "good": "a", "bad": "b", "commits_in_range": 3, "started_at": "t",
        "phase": "bisecting", "steps": [], "signature": None,
    }
    for key in draw(st.lists(st.sampled_from(sorted(state)), max_size=3)):
        state[key] = draw(JSON)
    return state


@pytest.fixture(scope="module")
def repo() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "init", "-q", tmp], check=True)
        yield Path(tmp)


@FAST
@given(bisect_states())
def test_bisect_state_files_load_or_are_refused(repo: Path, state: Any) -> None:
    (repo / ".git" / "oomrace-bisect.json").write_text(json.dumps(state))
    with suppress(UsageError):
        bisect.load_state(repo)


NUMBER_TEXT = st.one_of(
    st.text(max_size=12),
    st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "1e999", "-0", "0x10", "1_0"]),
)


@FAST
@given(NUMBER_TEXT)
def test_positive_number_gives_finite_positive_or_refuses(text: str) -> None:
    try:
        value = positive_number(text, "--duration")
    except UsageError:
        return
    assert math.isfinite(value) and value > 0


@FAST
@given(st.sampled_from(["--duration", "--boot-timeout", "--cpus", "--memory",
                        "--iterations", "--seed", "--writers"]), NUMBER_TEXT)
def test_cli_numbers_never_end_in_a_traceback(option: str, text: str) -> None:
    # --arch sparc: whatever the number, the run is refused before anything starts.
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = cli.main(["run", "--arch", "sparc", f"{option}={text}"])
    assert code == 2 and "Traceback" not in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1
