"""Where the project's own data lives: the source tree this package was loaded from."""

from __future__ import annotations

from pathlib import Path

from .errors import HarnessError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_dir(name: str) -> Path:
    """A top-level folder of the project (rootfs, kernels, configs); clear error if absent."""
    path = PROJECT_ROOT / name
    if not path.is_dir():
        raise HarnessError(
            f"{path} is missing: oomrace runs from its source tree; "
            "install it with `pip install -e .` from a clone"
        )
    return path
