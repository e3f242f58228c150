"""Property tests (hypothesis) of parse-log's gate: no --allow, --fail-on or --allow-file
content, however odd, ends in a traceback; each is a verdict (0, 1) or one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_parse_log_gate import NULL_DEREF, WARNING, run

hypothesis = pytest.importorskip("hypothesis")  # in the dev extras (pip install -e .[dev])
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
# Random text, and text built of regex syntax so that many patterns compile.
REGEX_TEXT = st.text(max_size=40) | st.text(alphabet="()[]{}?*+|^$\\.-,0123456789aPx<>=!:#\n",
                                            max_size=40)


@pytest.fixture
def both(tmp_path: Path) -> Path:
    path = tmp_path / "console.log"
    path.write_text(WARNING + NULL_DEREF)
    return path


def _one_line_or_verdict(code: int, err: str) -> None:
    assert code in (0, 1, 2), err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("oomrace: error: "), err
    else:
        assert err == ""


@FAST
@given(allow=st.lists(REGEX_TEXT, max_size=3), fail_on=st.lists(REGEX_TEXT, max_size=2))
def test_arbitrary_patterns_never_trace_back(both: Path, capsys: pytest.CaptureFixture[str],
                                             allow: list[str], fail_on: list[str]) -> None:
    argv = [f"--allow={a}" for a in allow] + [f"--fail-on={f}" for f in fail_on]
    code, _, err = run(capsys, str(both), *argv)
    _one_line_or_verdict(code, err)


@FAST
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_allow_files_never_trace_back(both: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                text: str) -> None:
    known = tmp_path / "known.txt"
    known.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    code, _, err = run(capsys, str(both), "--allow-file", str(known))
    _one_line_or_verdict(code, err)
