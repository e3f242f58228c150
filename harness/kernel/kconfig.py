"""Kconfig: reading .config files and fragments, and checking that a build got the options
its fragments ask for."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import KernelError

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^#\s*(CONFIG_[A-Za-z0-9_]+) is not set\s*$")


def parse_kconfig(text: str) -> dict[str, str]:
    """Options of a .config or fragment: name -> value, with "n" for `is not set`."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _SET.match(line)
        if m:
            options[m.group(1)] = m.group(2).strip()
            continue
        m = _UNSET.match(line)
        if m:
            options[m.group(1)] = "n"
    return options


@dataclass(frozen=True)
class ConfigMismatch:
    option: str
    wanted: str
    got: str  # "n" when absent or not set
    fragment: str

    def __str__(self) -> str:
        def show(v: str) -> str:
            return "not set" if v == "n" else v

        return (
            f"{self.option}: {self.fragment} asks for {show(self.wanted)}, "
            f"the final .config has {show(self.got)}"
        )


def requested_options(fragments: Sequence[Path]) -> dict[str, tuple[str, str]]:
    """option -> (value, fragment name); a later fragment overrides an earlier one."""
    wanted: dict[str, tuple[str, str]] = {}
    for frag in fragments:
        for option, value in parse_kconfig(frag.read_text()).items():
            wanted[option] = (value, frag.name)
    return wanted


def check_config(config_text: str, fragments: Sequence[Path]) -> list[ConfigMismatch]:
    """Every option the fragments request that the final .config does not have."""
    final = parse_kconfig(config_text)
    bad = []
    for option, (value, frag) in requested_options(fragments).items():
        got = final.get(option, "n")
        if got != value:
            bad.append(ConfigMismatch(option, value, got, frag))
    return bad


def config_error(mismatches: Sequence[ConfigMismatch], config: Path) -> KernelError:
    lines = "\n".join(f"  {m}" for m in mismatches)
    frags = ", ".join(sorted({m.fragment for m in mismatches}))
    return KernelError(
        f"{len(mismatches)} option(s) requested by {frags} did not make it into the "
        f"final .config ({config}); they are probably misspelt, or depend on an option "
        f"that is off (check with `make menuconfig` and search for the name):\n{lines}"
    )



_KCONFIG_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$", re.M)


def kconfig_symbols(tree: Path, skip_subdir: str = "") -> set[str]:
    """Every symbol a Kconfig file of the tree declares (without CONFIG_); `skip_subdir`,
    a directory at the top of the tree (a build directory), is not searched."""
    symbols: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d != skip_subdir or Path(dirpath) != tree]
        for name in filenames:
            if name.startswith("Kconfig"):
                text = Path(dirpath, name).read_text(errors="replace")
                symbols.update(_KCONFIG_SYMBOL.findall(text))
    return symbols

