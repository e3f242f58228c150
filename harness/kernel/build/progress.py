"""Running a kernel build step: its output teed into the build log, a progress line with
the object count, and the whole process group ended if we are interrupted."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from ... import signals
from ...proc import end_group


def count_objects(build_dir: Path) -> int:
    n = 0
    for _, _, files in os.walk(build_dir):
        n += sum(1 for f in files if f.endswith(".o"))
    return n


class BuildProgress:
    """A one-line status on a tty, a plain line every 30 s otherwise; nothing if disabled."""

    def __init__(self, label: str, enabled: bool, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.start = time.monotonic()
        self.last_plain = 0.0
        self.shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        line = f"[{self.label}] {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d} {text}"
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + line[:width])
            self.stream.flush()
            self.shown = True
        elif elapsed - self.last_plain >= 30 or self.last_plain == 0:
            self.last_plain = max(elapsed, 1e-9)
            self.stream.write(line + "\n")
            self.stream.flush()

    def done(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")
        elapsed = time.monotonic() - self.start
        self.stream.write(f"[{self.label}] {text} in {elapsed:.0f}s\n")
        self.stream.flush()


def run_logged(
    argv: Sequence[str],
    log: IO[str],
    env: Mapping[str, str],
    progress: BuildProgress,
    stage: str,
    build_dir: Path,
    expected_objects: int | None,
) -> int:
    """Run `argv`, teeing its output into `log` and updating `progress`; its exit status."""
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env),
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # its own group: make's compilers are ended with it
        preexec_fn=signals.on_parent_death(signal.SIGTERM),  # tuxmake stops make if we die
    )
    last = [""]

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.strip() and not line.startswith(("make ", "$ ")):
                last[0] = line.strip()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            objects = count_objects(build_dir) if build_dir.is_dir() else 0
            text = f"{stage}: {objects} objects"
            if expected_objects:
                text += f" (~{min(99, 100 * objects // expected_objects)}%)"
            if last[0]:
                text += f" | {last[0]}"
            progress.update(text)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
    except BaseException:
        end_group(proc)
        raise
    finally:
        reader.join(timeout=10)
        log.flush()
    return proc.returncode
