"""Time `harness.kernel_log.parse` on a ~10 MB console log.

The log is the crash corpus (../shared/crash-corpus, or $OOMRACE_CRASH_CORPUS) repeated
and interleaved with ordinary boot/user-space noise until it reaches the target size.
Run: python benchmarks/bench_parse_log.py [--mb 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.kernel_log import parse  # noqa: E402

NOISE = [
    "[   12.345678] random: crng init done",
    "[   12.400000][ T1] systemd[1]: Started Journal Service.",
    "[   13.000001] audit: type=1400 audit(1700000000.000:1): avc: denied { read } for pid=1",
    "oomrace-stress: iteration 41 ok, rss=512MB",
    "syzkaller login: [   14.123456] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
    "[   15.000000] EXT4-fs (sda): mounted filesystem with ordered data mode. Opts: (null)",
]


def corpus_dir() -> Path:
    env = os.environ.get("OOMRACE_CRASH_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "crash-corpus"


def corpus_logs() -> list[str]:
    d = corpus_dir()
    logs: list[str] = []
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if f.name == "README.md" or not f.is_file():
                continue
            raw = f.read_bytes().decode("utf-8", errors="replace")
            _, _, body = raw.partition("\n\n")
            logs.append(body if not raw.startswith("\n") else raw[1:])
    return logs


def build_log(target_bytes: int) -> str:
    logs = corpus_logs()
    noise = "\n".join(NOISE * 20) + "\n"
    parts: list[str] = []
    size = 0
    i = 0
    while size < target_bytes:
        chunk = (logs[i % len(logs)] + "\n" if logs else "") + noise
        parts.append(chunk)
        size += len(chunk)
        i += 1
    return "".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=10.0, help="log size in MB (default 10)")
    args = ap.parse_args()
    text = build_log(int(args.mb * 1024 * 1024))
    t0 = time.perf_counter()
    c0 = time.process_time()
    analysis = parse(text)
    cpu = time.process_time() - c0
    elapsed = time.perf_counter() - t0
    print(
        f"parsed {len(text) / 1e6:.1f} MB ({text.count(chr(10))} lines): "
        f"{len(analysis.reports)} reports, {len(analysis.events)} events "
        f"in {elapsed:.3f} s (cpu {cpu:.3f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
