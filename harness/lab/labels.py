"""The kernel's part of a cell id: a name as it is, an image by its file name, and two
images of one file name told apart by the folders above them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath


def kernel_label(kernel: str) -> str:
    """A kernel's part of a cell id: its name, or an image's file name."""
    if "/" not in kernel:
        return kernel
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", kernel.rstrip("/").rsplit("/", 1)[-1])


def image_labels(kernels: Sequence[str]) -> dict[str, str]:
    """Labels for images whose file names clash: two different images called bzImage
    become a_bzImage and b_bzImage (the fewest trailing path parts that tell them
    apart). An image whose file name is its own keeps the plain label (not listed)."""
    paths = sorted({k for k in kernels if "/" in k})
    by_label: dict[str, list[str]] = {}
    for path in paths:
        by_label.setdefault(kernel_label(path), []).append(path)
    labels: dict[str, str] = {}
    for clash in (group for group in by_label.values() if len(group) > 1):
        parts = [PurePosixPath(p).parts for p in clash]
        for depth in range(2, max(len(p) for p in parts) + 1):
            tails = [_tail_label(p, depth) for p in parts]
            if len(set(tails)) == len(tails):
                labels.update(zip(clash, tails, strict=True))
                break
    return labels


def _tail_label(parts: Sequence[str], depth: int) -> str:
    return "_".join(kernel_label(part) for part in parts[-depth:] if part != "/")
