"""The bisect's state file, typed inside (Phase, Calibration with its RateBounds, Plan,
BisectResult): state files written before the types still load, and today's is
written back byte for byte the same JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import bisect
from harness.bisect import BisectState, Phase
from harness.bisect.stats import overall_confidence

from ..conftest import REPO

DATA = REPO / "tests" / "data" / "bisect"


def _load(name: str) -> tuple[dict[str, object], BisectState]:
    data = json.loads((DATA / name).read_text())
    return data, BisectState.from_dict(data)


def test_a_state_of_the_clopper_pearson_rule_reads_typed_and_writes_the_same() -> None:
    data, state = _load("state-clopper-pearson.json")
    assert state.phase is Phase.DONE
    assert state.calibration is not None and state.plan is not None
    bounds = state.calibration.bounds
    assert (bounds.detections, bounds.trials) == (26, 30)
    assert bounds.p_low_confidence == pytest.approx(0.965) and bounds.interval95 is not None
    assert state.plan.trials_per_good == 8 and not state.plan.capped_by_max_iterations
    assert state.result is not None and state.result.commit == "c" * 40
    assert state.result.candidates == ("c" * 40,) and state.result.kind == "regression"
    # Written back the same, plus the one field this state predates (read as its default).
    written = json.loads(json.dumps(state.to_dict()))
    written["config"].pop("repro_timeout", None)
    assert written == data


def test_a_state_of_the_wilson_rule_and_25_iteration_trials_resumes_as_planned() -> None:
    data, state = _load("state-wilson-25-iterations.json")
    assert state.phase is Phase.BISECTING and state.result is None
    assert state.config.iterations_per_trial == bisect.BATCH_ITERATIONS == 25
    assert state.config.host_cpus == 0  # what states from before ran with
    assert state.calibration is not None and state.plan is not None
    bounds = state.calibration.bounds
    assert bounds.p_low_confidence is None and bounds.interval95 is None
    assert bounds.level == 1.0  # the Wilson bound was taken as certain
    assert state.plan.trials_per_good == 5
    goods = [5, 5, 5]
    assert bisect.bisect_confidence(bounds, goods) == overall_confidence(bounds.p_low, goods)
    assert "95% Wilson interval" in bisect.report_text(state)
    written = json.loads(json.dumps(state.to_dict()))
    for part in ("calibration", "plan", "steps", "phase", "result", "signature"):
        assert written[part] == data[part], part


@pytest.mark.parametrize("phase", ["calibrating", "confirming", "bisecting", "done"])
def test_every_phase_reads_back(phase: str) -> None:
    data, _ = _load("state-clopper-pearson.json")
    state = BisectState.from_dict({**data, "phase": phase})
    assert state.phase == Phase(phase) and state.to_dict()["phase"] == phase


def test_an_unknown_phase_is_an_unreadable_state(tmp_path: Path) -> None:
    data, _ = _load("state-clopper-pearson.json")
    with pytest.raises(ValueError, match="'halfway' is not a valid Phase"):
        BisectState.from_dict({**data, "phase": "halfway"})
