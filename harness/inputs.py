"""Checks for values that come from users and files: numbers and path components.

One place, so the CLI, the matrix loader and the lab merge refuse the same things the
same way (a UsageError naming the value and what would be accepted).
"""

from __future__ import annotations

import argparse
import math
import re
from typing import NoReturn

from .errors import UsageError

# A cell id or similar name: one path component, no separators, not "." or "..".
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")


def positive_number(value: object, what: str) -> float:
    """`value` (text or a number) as a finite float > 0; UsageError otherwise.

    float() accepts "nan" and "inf", and nan passes every `<=` check, so an infinite
    --duration would never stop: both are refused here.
    """
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise UsageError(f"{what} must be a finite number > 0, not {value!r}")
    return number


def safe_component(name: object, what: str) -> str:
    """`name` if it is one harmless path component (letters, digits, . _ + -)."""
    if not isinstance(name, str) or _SAFE_COMPONENT.fullmatch(name) is None:
        raise UsageError(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', "
                         "'+', '-'; no '/' or '..'); the input is corrupt or hostile")
    return name


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (the usage block is behind --help), exit 2;
    sub-parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
