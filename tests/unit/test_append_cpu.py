"""--append and --cpu take one path in every entry point: into MachineOptions, through
guest.guest_spec into arches.qemu_argv (run, boot, bisect, the pytest plugin, lab cells)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness import lab
from harness.arches import get_arch, qemu_argv
from harness.cli import commands
from harness.guest import guest_spec
from harness.kernel.image import KernelImage
from harness.machine import MachineOptions
from harness.ssh import RunKey

from .test_pytest_options import pytest_in

KEY = RunKey.generate()


def _argv(options: MachineOptions, release: str | None = "6.1.0",
          recipe_cmdline: tuple[str, ...] = ()) -> list[str]:
    arch = get_arch("aarch64")
    image = KernelImage(Path("/k/Image"), arch, "test", release=release,
                        cmdline_extra=recipe_cmdline)
    return qemu_argv(arch, guest_spec(arch, image, Path("/i.cpio"), KEY, options,
                                      Path("/c.log")))


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_cpu_overrides_the_arch_and_version_default() -> None:
    assert _value(_argv(MachineOptions()), "-cpu") == get_arch("aarch64").cpu
    assert _value(_argv(MachineOptions(), release="4.14.2"), "-cpu") == "cortex-a57"
    assert _value(_argv(MachineOptions(cpu="cortex-a72"), release="4.14.2"),
                  "-cpu") == "cortex-a72"


def test_append_comes_after_the_recipes_cmdline_once() -> None:
    cmdline = _value(_argv(MachineOptions(cmdline_extra=("quiet", "page_poison=1")),
                           recipe_cmdline=("page_poison=1", "oops=panic")), "-append")
    words = cmdline.split()
    assert words.index("oops=panic") < words.index("quiet")
    assert words.count("page_poison=1") == 1


def _cli_options(*argv: str) -> MachineOptions:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    from harness.cli.options import add_run_options
    add_run_options(sub.add_parser("run"))
    return commands._options(parser.parse_args(["run", *argv]))


def test_run_options_reach_machine_options() -> None:
    options = _cli_options("--append", "a=1", "--append", "b", "--cpu", "cortex-a57")
    assert options.cmdline_extra == ("a=1", "b") and options.cpu == "cortex-a57"


def test_bisect_takes_append_and_cpu(tmp_path: Path) -> None:
    from harness.cli import build_parser

    args = build_parser().parse_args(
        ["bisect", "--repo", str(tmp_path), "--good", "a", "--bad", "b", "--arch",
         "aarch64", "--append", "x=1", "--cpu", "cortex-a57", "--exec", "true",
         "--artifacts", str(tmp_path / "a")])
    cfg = commands._bisect_config(args)
    assert (cfg.append, cfg.cpu, cfg.exec_command) == (["x=1"], "cortex-a57", "true")


MATRIX = """
[[cell]]
arch = "aarch64"
kernel = "debian"
scenario = "smoke"
append = ["quiet", "x=1"]
cpu = "cortex-a57"
"""


def test_lab_cells_take_append_and_cpu() -> None:
    [cell] = lab.parse_matrix(MATRIX, Path("m.toml"), recipes=["v6.1"]).cells
    options = cell.options()
    assert options.cmdline_extra == ("quiet", "x=1") and options.cpu == "cortex-a57"
    assert lab.Cell.from_dict(cell.to_dict()) == cell  # through plan.json
    command = lab.repro_command(cell)
    assert "--cpu cortex-a57" in command and "--append quiet --append x=1" in command


@pytest.mark.parametrize(("line", "message"), [
    ('append = 3', "append must be"), ('cpu = "-smp 99"', "cpu must be")])
def test_lab_refuses_bad_append_and_cpu(line: str, message: str) -> None:
    text = MATRIX.replace('append = ["quiet", "x=1"]\ncpu = "cortex-a57"', line)
    with pytest.raises(lab.MatrixError, match=message):
        lab.parse_matrix(text, Path("m.toml"), recipes=["v6.1"])


def test_pytest_options_reach_the_guest_factory(tmp_path: Path) -> None:
    (tmp_path / "test_show.py").write_text(
        "def test_show(request):\n"
        "    o = request.config.option\n"
        "    print('OOMRACE', o.oomrace_append, o.oomrace_cpu)\n")
    done = pytest_in(tmp_path, "--oomrace-append", "a=1", "--oomrace-append", "b",
                     "--oomrace-cpu", "cortex-a57")
    assert "OOMRACE ['a=1', 'b'] cortex-a57" in done.stdout, done.stdout + done.stderr


def test_a_reproducer_gets_the_plain_guest_by_default() -> None:
    options = _cli_options("--exec", "true")
    assert (options.cpus, options.host_cpus) == (2, 0)
    assert _cli_options("--exec", "true", "--cpus", "8").cpus == 8
    assert _cli_options().cpus == 8  # the default scenario is a stress scenario
