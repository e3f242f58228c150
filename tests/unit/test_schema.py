"""Every JSON file we write carries schema_version; readers take old files and refuse
newer ones with a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import kernel_log
from harness.errors import UsageError
from harness.run import RunResult
from harness.schema import SCHEMA_VERSION, check_version
from harness.taint import TaintChange
from tests.conftest import kernel_report, stress_workload


def _result(tmp_path: Path) -> RunResult:
    return RunResult(arch="aarch64", kernel="debian", verdict="corrupted", reason="r",
                     workdir=str(tmp_path), console_log="c", dmesg="d", scenario="oom",
                     qemu_argv=("qemu-system-aarch64",),
                     workload=stress_workload(trials=3, detections=1, iterations=75, checker=1),
                     reports=(kernel_report("Bad page state in process x"),),
                     events=(kernel_log.Event("oom_kill", 3, {"pid": "7"}),),
                     taint=TaintChange(0, 1 << 5))


def test_run_result_round_trips_through_result_json(tmp_path: Path) -> None:
    result = _result(tmp_path)
    result.write(tmp_path / "result.json")
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["workload"]["trials"] == 3 and data["workload"]["detections"] == 1
    assert data["workload"]["checker_corruptions"] == 1
    assert data["taint"]["new"][0]["flag"] == "B"
    assert RunResult.from_json(data) == result


def test_readers_take_unversioned_files_and_refuse_newer_ones(tmp_path: Path) -> None:
    data = _result(tmp_path).to_json()
    del data["schema_version"]
    assert RunResult.from_json(data).verdict == "corrupted"
    check_version({}, "old.json")
    with pytest.raises(UsageError, match="newer oomrace") as e:
        RunResult.from_json({**data, "schema_version": SCHEMA_VERSION + 1})
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="not a version number"):
        check_version({"schema_version": "1"}, "x.json")
