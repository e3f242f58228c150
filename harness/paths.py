"""Where the project's own data lives: rootfs/, configs/ and kernels/.

In a checkout they sit at the top of the source tree, beside harness/. A wheel cannot
install top-level folders, so it carries them inside the package as harness/_project/
(pyproject.toml's package-dir mapping); an installed copy is looked for first, because
beside an installed harness/ (in site-packages) a folder called configs/ or kernels/
could belong to anything.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import HarnessError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The source tree (a checkout): tests/ and the git history live only here."""

INSTALLED_DATA = "_project"
"""The folder inside the installed package that holds the project's data folders."""


def _installed(name: str) -> Path | None:
    """`name` as a wheel installed it, when this package was installed from one."""
    location = resources.files(__package__ or "harness").joinpath(INSTALLED_DATA, name)
    # A package on a file system gives a Path; a zipped install is not supported.
    return location if isinstance(location, Path) and location.is_dir() else None


def checkout() -> Path | None:
    """The source tree this harness runs from (a clone, or an editable install of one);
    None when it was installed from a wheel."""
    is_tree = (PROJECT_ROOT / ".git").exists() and (PROJECT_ROOT / "pyproject.toml").is_file()
    return PROJECT_ROOT if is_tree and _installed("kernels") is None else None


def data_path(name: str) -> Path:
    """Where the data folder `name` is, installed or in the checkout (not checked: for
    module-level constants; project_dir checks)."""
    return _installed(name) or PROJECT_ROOT / name


def project_dir(name: str) -> Path:
    """A data folder of the project (rootfs, kernels, configs); clear error if absent."""
    path = data_path(name)
    if not path.is_dir():
        raise HarnessError(
            f"{path} is missing: install oomrace from a wheel built from its source tree, "
            "or with `pip install -e .` from a clone"
        )
    return path
