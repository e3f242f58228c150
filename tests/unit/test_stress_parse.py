"""harness/stress.py: building the command line and reading JSON-lines output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from harness import stress
from harness.errors import GuestCommandError, HarnessError, UsageError
from harness.runner import Command, CommandResult, command_text
from harness.stress import (
    INJECTED_PROVENANCE,
    Provenance,
    Scenario,
    StressOptions,
    parse_events,
    parse_output,
)

START = (
    '{"event":"start","scenario":"mrelease","iterations":0,"duration":2.000000,"writers":7,'
    '"region_mb":16,"hot_pages":8,"seed":7,"checker":true,"checker_mb":16,"window_ms":50,'
    '"inject_corruption":false,"pid":81,"kernel":"4.14.0","machine":"aarch64","cpus":8,'
    '"page_size":4096,"reap_cpu":0}'
)
PROGRESS = (
    '{"event":"progress","elapsed":1.000000,"iterations":40,"reaps":40,"reap_failures_gone":1,'
    '"faults":0,"writer_passes":900,"checker_rounds":60,"checker_pages_checked":983040,'
    '"corruptions":0}'
)
CORRUPTION = (
    '{"event":"corruption","source":"checker","address":"0x0000ffff9c000018",'
    '"expected":"0xc4ec925d66db952f","found":"0x0a7e005103000011",'
    '"provenance":{"pid":81,"thread":3,"iteration":17},"seconds_since_reap":0.000412,'
    '"bad_words":512,"round":33,"pass":1,"pid":82}'
)


def summary(**overrides: Any) -> str:
    fields: dict[str, Any] = {
        "event": "summary",
        "scenario": "mrelease",
        "status": "clean",
        "exit_code": 0,
        "elapsed": 2.01,
        "iterations": 80,
        "reaps": 80,
        "reap_failures_gone": 2,
        "reap_failures_other": 0,
        "oom_kills": 0,
        "faults": 0,
        "writer_passes": 1800,
        "checker_rounds": 120,
        "checker_pages_checked": 1966080,
        "checker_alloc_failures": 0,
        "corruptions": 0,
        "corrupted_words": 0,
        "corruption_reports": 0,
        "errors": 0,
        "interrupted": False,
    }
    fields.update(overrides)
    return json.dumps(fields, separators=(",", ":"))


# --------------------------------------------------------------------------- options


def test_argv_defaults_leave_program_defaults() -> None:
    argv = StressOptions().argv()
    assert argv == [
        "/bin/oomrace-stress",
        "--scenario",
        "mrelease",
        "--iterations",
        "0",
        "--duration",
        "10",
        "--checker",
        "--json",
    ]


def test_argv_all_options() -> None:
    opts = StressOptions(
        scenario=Scenario.MADVISE,
        iterations=5,
        duration_s=2.5,
        writers=4,
        region_mb=32,
        hot_pages=16,
        seed=99,
        checker=False,
        checker_mb=8,
        window_ms=20,
        pause_us=0,
        pin=False,
        progress_interval_s=0.5,
        cgroup_root="/sys/fs/cgroup",
        inject_corruption=True,
    )
    argv = opts.argv("/tmp/oomrace-stress")
    assert argv[0] == "/tmp/oomrace-stress"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["--scenario"] == "madvise"
    assert pairs["--duration"] == "2.5"
    assert pairs["--writers"] == "4"
    assert pairs["--pause-us"] == "0"
    assert pairs["--progress-interval"] == "0.5"
    for flag in ("--no-checker", "--no-pin", "--inject-corruption", "--json"):
        assert flag in argv
    assert "--checker" not in argv


def test_scenario_given_as_string_is_parsed() -> None:
    opts = StressOptions(scenario="oom")  # type: ignore[arg-type]
    assert opts.scenario is Scenario.OOM


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scenario": "nope"},
        {"duration_s": 0},
        {"iterations": -1},
        {"writers": 0},
        {"writers": 65},
        {"region_mb": 0},
        {"seed": -3},
        {"progress_interval_s": 0.0},
    ],
)
def test_bad_options_raise_usage_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        StressOptions(**kwargs)


def test_scenario_parse_names_valid_choices() -> None:
    with pytest.raises(UsageError, match="mrelease, oom, munmap, madvise"):
        Scenario.parse("reap")


# --------------------------------------------------------------------------- parsing


def test_clean_run() -> None:
    result = parse_output("\n".join([START, PROGRESS, summary()]) + "\n", exit_code=0)
    assert result.status == "clean"
    assert result.clean and result.complete and not result.corrupted
    assert result.scenario == "mrelease"
    assert (result.iterations, result.reaps, result.reap_failures_gone) == (80, 80, 2)
    assert result.counters["checker_pages_checked"] == 1966080
    assert "exit_code" not in result.counters
    assert result.exit_code == 0
    assert result.elapsed == pytest.approx(2.01)
    assert result.corruptions == []
    assert result.start is not None and result.start["kernel"] == "4.14.0"
    assert len(result.progress) == 1
    assert result.ignored_lines == 0


def test_exit_code_comes_from_summary_when_not_given() -> None:
    result = parse_output("\n".join([START, summary()]))
    assert result.exit_code == 0
    assert result.status == "clean"


def test_corruption_record_is_decoded() -> None:
    text = "\n".join([START, CORRUPTION, summary(status="corrupted", exit_code=1, corruptions=1)])
    result = parse_output(text, exit_code=1)
    assert result.status == "corrupted"
    [c] = result.corruptions
    assert c.source == "checker"
    assert c.address == 0x0000FFFF9C000018
    assert c.expected == 0xC4EC925D66DB952F
    assert c.found == 0x0A7E005103000011
    assert c.provenance == Provenance(pid=81, thread=3, iteration=17)
    assert c.seconds_since_reap == pytest.approx(0.000412)
    assert (c.bad_words, c.round, c.pass_index, c.pid) == (512, 33, 1, 82)
    d = result.to_dict()
    assert d["corruptions"][0]["address"] == "0x0000ffff9c000018"
    assert d["corruptions"][0]["provenance"] == {"pid": 81, "thread": 3, "iteration": 17}
    assert d["corruptions"][0]["pass"] == 1
    json.dumps(d)  # to_dict is JSON-able


def test_corruption_without_provenance() -> None:
    line = (
        '{"event":"corruption","source":"writer","address":"0x10","expected":"0x1",'
        '"found":"0x0000000000000000","provenance":null,"seconds_since_reap":null,'
        '"bad_words":3,"round":4,"pass":0,"pid":9}'
    )
    [c] = parse_output(line).corruptions
    assert c.provenance is None
    assert c.seconds_since_reap is None
    assert c.found == 0


def test_injected_provenance_matches_program() -> None:
    assert Provenance(pid=4242, thread=7, iteration=99) == INJECTED_PROVENANCE


def test_kernel_noise_interleaved_on_console() -> None:
    text = "\r\n".join(
        [
            "[    3.141592] random: crng init done",
            "# /bin/oomrace-stress --scenario mrelease",
            START,
            "[   12.000001] oom_reaper: reaped process 81 (oomrace-stress), now anon-rss:0kB",
            "[   12.000002] " + PROGRESS,  # kernel timestamp glued in front of our line
            PROGRESS + "garbage after the object",
            '{"event":"progr[   12.5] Out of memory: Killed process 90',  # broken in the middle
            "{not json at all}",
            '{"event": 5}',
            summary(),
        ]
    )
    result = parse_output(text, exit_code=0)
    assert result.status == "clean"
    assert result.start is not None
    assert len(result.progress) == 2
    assert result.ignored_lines == 6
    assert result.reaps == 80


def test_truncated_last_line_means_error() -> None:
    cut = summary()[:40]
    result = parse_output("\n".join([START, PROGRESS, cut]), exit_code=137)
    assert result.summary is None
    assert not result.complete
    assert result.status == "error"
    assert result.exit_code == 137
    # Counters fall back to the last progress line.
    assert result.reaps == 40
    assert result.counters["checker_pages_checked"] == 983040
    assert "cut short" in result.error_text()
    with pytest.raises(GuestCommandError, match="cut short"):
        result.raise_for_error()


def test_truncated_run_with_corruption_is_still_corrupted() -> None:
    result = parse_output("\n".join([START, CORRUPTION, '{"event":"sum']))
    assert result.status == "corrupted"
    assert result.exit_code == stress.EXIT_RUNTIME
    assert len(result.corruptions) == 1
    result.raise_for_error()  # a finding, not an error


def test_error_event() -> None:
    err = (
        '{"event":"error","message":"process_mrelease is unavailable","syscall":'
        '"process_mrelease","errno":38,"errno_name":"ENOSYS","strerror":"Function not '
        'implemented","fatal":true}'
    )
    text = "\n".join([START, err, summary(status="error", exit_code=3, errors=1)])
    result = parse_output(text, exit_code=3)
    assert result.status == "error"
    [e] = result.errors
    assert (e.syscall, e.errno, e.errno_name, e.fatal) == ("process_mrelease", 38, "ENOSYS", True)
    assert "ENOSYS" in str(e)
    with pytest.raises(GuestCommandError, match="process_mrelease"):
        result.raise_for_error()


def test_nonzero_exit_code_overrides_clean_summary() -> None:
    result = parse_output("\n".join([START, summary()]), exit_code=3)
    assert result.status == "error"


def test_summary_corruption_count_without_records() -> None:
    # More corruptions than the program prints lines for: the count still decides.
    result = parse_output("\n".join([START, summary(status="corrupted", corruptions=70)]))
    assert result.status == "corrupted"
    assert result.corruptions == []
    assert result.counters["corruptions"] == 70


def test_parse_events_empty() -> None:
    assert parse_events("") == ([], 0)
    result = parse_output("")
    assert result.status == "error"
    assert result.scenario == ""


# --------------------------------------------------------------------------- run()


class FakeRunner:
    name = "fake"

    def __init__(self, stdout: str, exit_code: int) -> None:
        self.stdout = stdout
        self.exit_code = exit_code
        self.calls: list[tuple[Command, float, bool]] = []

    def run(
        self, command: Sequence[str] | str, timeout: float, check: bool = False
    ) -> CommandResult:
        self.calls.append((command, timeout, check))
        return CommandResult(command_text(command), self.stdout, self.exit_code, 3.5)


def test_run_passes_argv_and_default_timeout() -> None:
    runner = FakeRunner("\n".join([START, summary()]), 0)
    opts = StressOptions(duration_s=2)
    result = stress.run(runner, opts)
    assert result.status == "clean"
    [(command, timeout, check)] = runner.calls
    assert list(command) == opts.argv()
    assert timeout == pytest.approx(2 + stress.TIMEOUT_GRACE_S)
    assert check is False


def test_run_custom_binary_and_timeout() -> None:
    runner = FakeRunner("\n".join([START, summary()]), 0)
    stress.run(runner, StressOptions(), timeout=99, binary="/opt/x")
    [(command, timeout, _)] = runner.calls
    assert next(iter(command)) == "/opt/x"
    assert timeout == 99


def test_run_usage_error() -> None:
    runner = FakeRunner("oomrace-stress: unknown scenario 'x'\nusage: oomrace-stress ...", 2)
    with pytest.raises(UsageError, match="rejected its arguments"):
        stress.run(runner, StressOptions())


def test_run_program_missing() -> None:
    runner = FakeRunner("sh: /bin/oomrace-stress: not found", 127)
    with pytest.raises(GuestCommandError, match="did not run"):
        stress.run(runner, StressOptions())


def test_run_returns_corrupted_result() -> None:
    runner = FakeRunner("\n".join([START, CORRUPTION, summary(status="corrupted")]), 1)
    result = stress.run(runner, StressOptions())
    assert result.corrupted
    assert isinstance(result.corruptions[0].provenance, Provenance)


def test_errors_are_harness_errors() -> None:
    assert issubclass(UsageError, HarnessError)
    assert issubclass(GuestCommandError, HarnessError)
