"""oomrace: catch and bisect OOM-reaper races on real kernels booted under QEMU."""

__version__ = "0.1.0"
