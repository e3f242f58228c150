"""The CLI module: one table of subcommands and exit codes, `--json [FILE]` with one
meaning, doctor reading bootstrap's package list."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from harness import cli, tools
from harness.cli.exits import markdown_table
from harness.cli.output import STDOUT
from harness.stress import Scenario

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "tests" / "data" / "lkdtm" / "aarch64" / "BUG.log"


def test_readme_exit_code_table_is_the_cli_table() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    first_table = table.split("\n\n")[0]
    assert markdown_table() in section
    assert first_table.startswith(markdown_table())


def test_doctor_checks_exactly_what_bootstrap_installs() -> None:
    # bootstrap's own reader, run by bash, against the list doctor reads
    bootstrap = (REPO / "bootstrap").read_text()
    assert "add_packages configs/host-packages.txt" in bootstrap
    start = bootstrap.index("add_packages() {")
    reader = bootstrap[start:bootstrap.index("\n}\n", start) + 3]
    script = ("packages=()\n" + reader + "add_packages configs/host-packages.txt\n"
              'printf "%s\\n" "${packages[@]}"')
    listed = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == [p.package for p in tools.host_packages()]
    assert set(listed) == {p.package for p in tools.doctor().checked}
    for kernel_tool in ("flex", "bison", "bc", "libelf-dev", "libssl-dev", "ccache", "rsync"):
        assert kernel_tool in listed


def test_every_arch_tool_package_is_in_the_host_list() -> None:
    from harness.arches import ARCHES

    by_arch = {p.package: p.arches for p in tools.host_packages()}
    for arch in ARCHES.values():
        for tool in tools.arch_tools(arch):
            assert by_arch.get(tool.package) in ("all", arch.name), tool


def test_doctor_json_to_stdout_and_to_a_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["doctor", "--json"])
    out = capsys.readouterr().out
    assert json.loads(out)["ok"] is (code == 0)
    target = tmp_path / "doctor.json"
    assert cli.main(["doctor", "--json", str(target)]) == code
    assert "host tools" in capsys.readouterr().out  # the human report stays on stdout
    assert json.loads(target.read_text())["ok"] is (code == 0)


def test_parse_log_json_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["parse-log", str(LOG), "--json"]) == 1
    alone = json.loads(capsys.readouterr().out)
    before = LOG.read_bytes()
    # `--json LOG` with no FILE (the form before --json took a FILE) is refused: LOG is
    # neither read as the log nor overwritten with JSON.
    assert cli.main(["parse-log", "--json", str(LOG)]) == 2
    assert "file" in capsys.readouterr().err and LOG.read_bytes() == before
    assert cli.main(["parse-log", "--json", STDOUT, str(LOG)]) == 1
    assert json.loads(capsys.readouterr().out) == alone
    target = tmp_path / "log.json"
    assert cli.main(["parse-log", str(LOG), "--json", str(target)]) == 1
    assert "crash report" in capsys.readouterr().out
    assert json.loads(target.read_text()) == alone


def test_every_result_command_takes_json_file() -> None:
    parser = cli.build_parser()
    subparsers = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("run", "parse-log", "bisect", "lab", "evaluate", "doctor"):
        action = next(a for a in subparsers[name]._actions if a.dest == "json")
        assert (action.nargs, action.const, action.default) == ("?", STDOUT, None), name


def test_kernel_build_is_a_nested_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["kernel", "build", "--help"]) == 0
    assert "--config-from" in capsys.readouterr().out
    assert cli.main(["kernel"]) == 2


def test_scenario_help_is_generated_from_the_scenarios(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--help"]) == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert ", ".join(s.value for s in Scenario) in text


def test_verbosity_levels() -> None:
    import logging

    from harness.cli.output import configure_logging

    configure_logging(0)
    assert logging.getLogger("harness.x").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("paramiko").getEffectiveLevel() == logging.WARNING
    configure_logging(1)
    assert logging.getLogger("harness.x").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("paramiko").getEffectiveLevel() == logging.WARNING
    configure_logging(2)
    assert logging.getLogger("paramiko").getEffectiveLevel() == logging.DEBUG
    configure_logging(0)
