"""The kernel's own mm selftests in our guests: which to run (suite), their static build
(build), the initramfs layer (layer), the run and its results (run), the lab cell (cell)."""
