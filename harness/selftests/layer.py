"""The selftests as an extra initramfs layer, and the guest initramfs with it appended.

The layer holds, under /kselftest, kselftest's own runner.sh, the suite's programs and
our `run.sh`, which sources the runner and calls its `run_many` on the programs named,
as the kernel's generated run_kselftest.sh does. runner.sh bounds each test with
/usr/bin/timeout when that exists; busybox's has another command line, so the layer adds
a /usr/bin/timeout that takes GNU's and answers 124 on a timeout as GNU's does.
Cpio archives concatenate, so the guest's initramfs is the base image, then the layer.
"""

from __future__ import annotations

from pathlib import Path

from .. import cache, rootfs
from ..cpio import CpioWriter
from .build import RUNNER, SelftestBuild

GUEST_ROOT = "kselftest"
BEGIN_MARKER = "OOMRACE-KSELFTEST-BEGIN"
END_MARKER = "OOMRACE-KSELFTEST-END"

# run.sh SUITE_DIR TIMEOUT PROGRAM...: kselftest's runner over PROGRAMs, TIMEOUT seconds
# each (the suite's own `settings` holds 45 s, meant for real hardware, not TCG).
RUN_SCRIPT = f"""#!/bin/sh
export BASE_DIR=/{GUEST_ROOT}
suite=$1 limit=$2
shift 2
echo "timeout=$limit" > "$BASE_DIR/$suite/settings"
# runner.sh writes the tests' output to /dev/stdout, which only udev would have made.
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
. "$BASE_DIR/kselftest/runner.sh"
cd "$BASE_DIR/$suite" || exit 1
# What run_vmtests.sh prepares before its hugetlb tests: huge pages for twice
# max(128 MB, cpus x huge page size) rounded up to 128 MB, hugetlbfs on ./huge, and SysV
# shared memory limits big enough for hugepage-shm's 256 MB segment.
hpage_kb=$(awk '/^Hugepagesize:/ {{print $2}}' /proc/meminfo)
if [ -n "$hpage_kb" ]; then
    half_mb=$(( ( $(grep -c ^processor /proc/cpuinfo) * hpage_kb / 1024 + 127 ) / 128 * 128 ))
    echo 3 > /proc/sys/vm/drop_caches
    echo $(( half_mb * 2 * 1024 / hpage_kb )) > /proc/sys/vm/nr_hugepages
    mkdir -p huge && mount -t hugetlbfs none huge
fi
echo 268435456 > /proc/sys/kernel/shmmax 2>/dev/null
echo 4194304 > /proc/sys/kernel/shmall 2>/dev/null
echo {BEGIN_MARKER}
run_many "$@"
echo {END_MARKER}
"""

# GNU timeout's `timeout [--foreground] SECS CMD...` on busybox's. runner.sh nests two
# (`timeout --foreground T timeout T cmd`); the inner one does the work. busybox kills
# with SIGKILL here and the exit is 137; it counts as a timeout (124, as GNU answers) only
# when the time was up, so a test the OOM killer ended stays a plain failure.
TIMEOUT_SCRIPT = """#!/bin/sh
[ "$1" = --foreground ] && shift
secs=$1
shift
[ "$1" = /usr/bin/timeout ] && exec "$@"
start=$(date +%s)
busybox timeout -s KILL "$secs" "$@"
rc=$?
if [ "$rc" = 137 ] && [ $(( $(date +%s) - start )) -ge "$secs" ]; then
    exit 124
fi
exit "$rc"
"""

LAYER_VERSION = 2  # bump when the layout below changes


def layer_key(built: SelftestBuild) -> str:
    return cache.digest("kselftest-layer", LAYER_VERSION, built.key, RUN_SCRIPT, TIMEOUT_SCRIPT)


def _write_layer(target: Path, built: SelftestBuild) -> None:
    with CpioWriter(target) as cpio:
        for directory in (GUEST_ROOT, f"{GUEST_ROOT}/kselftest", f"{GUEST_ROOT}/{built.suite_dir}",
                          "usr", "usr/bin"):
            cpio.directory(directory)
        cpio.file(f"{GUEST_ROOT}/{RUNNER}", (built.root / RUNNER).read_bytes(), 0o755)
        cpio.file(f"{GUEST_ROOT}/run.sh", RUN_SCRIPT.encode(), 0o755)
        cpio.file("usr/bin/timeout", TIMEOUT_SCRIPT.encode(), 0o755)
        for name in built.built:
            cpio.file(f"{GUEST_ROOT}/{built.suite_dir}/{name}",
                      built.program(name).read_bytes(), 0o755)


def with_selftests(base: rootfs.Initramfs, built: SelftestBuild) -> rootfs.Initramfs:
    """`base` with the selftests layer appended, as one cached initramfs."""
    key = cache.digest(base.key, layer_key(built))

    def make(out: Path) -> None:
        _write_layer(out / "layer.cpio", built)
        with (out / "initramfs.cpio").open("wb") as combined:
            combined.write(base.path.read_bytes())
            combined.write((out / "layer.cpio").read_bytes())
        (out / "layer.cpio").unlink()

    entry = cache.entry("initramfs", key, make)
    return rootfs.Initramfs(path=entry / "initramfs.cpio", arch=base.arch, key=key,
                            packages=base.packages)
