"""SIGTERM and SIGHUP handled like Ctrl-C.

Every cleanup in the harness (QEMU shut down, result.json written in a `finally`, the
lab's night summarised, a build's process group ended) already runs when
KeyboardInterrupt propagates. `install()` makes SIGTERM and SIGHUP raise `Interrupted`,
a KeyboardInterrupt that remembers its signal, so they take the same path and the
command exits 128 + the signal number (130 for SIGINT, as before).
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread where Ctrl-C would be."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} received")


class _State:
    """One per process: whether a signal was raised, and whether raising is deferred."""

    raised = False
    deferred = 0
    pending: int | None = None


def _handler(signum: int, frame: FrameType | None) -> None:
    # Raised once: a second SIGTERM must not break the cleanup the first one started
    # (every wait in it is bounded; SIGKILL is there for a user who will not wait).
    if _State.raised:
        return
    if _State.deferred:
        _State.pending = signum
        return
    _State.raised = True
    raise Interrupted(signum)


def install() -> bool:
    """Turn SIGTERM and SIGHUP into `Interrupted` in this process, and SIGINT into
    KeyboardInterrupt even where it was inherited as ignored; False (nothing done)
    outside the main thread, where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in HANDLED:
        signal.signal(sig, _handler)
    # A shell without job control starts background commands with SIGINT ignored, and
    # Python keeps it so: Ctrl-C (or a SIGINT from a script) must still interrupt us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return True


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal that interrupted (130 for Ctrl-C), as a shell reports it."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGHUP back while a step that must not be cut (a git checkout in the
    user's repository) runs; the signal is raised as soon as the step is done."""
    _State.deferred += 1
    try:
        yield
    finally:
        _State.deferred -= 1
        if not _State.deferred and _State.pending is not None and not _State.raised:
            signum, _State.pending = _State.pending, None
            _State.raised = True
            raise Interrupted(signum)


def reset() -> None:
    """Forget a raised signal (tests, and a process that handled one and goes on)."""
    _State.raised, _State.deferred, _State.pending = False, 0, None


PR_SET_PDEATHSIG = 1


def on_parent_death(sig: int) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the thread that started it dies, even by
    SIGKILL, so a killed harness does not leave its children running."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in it

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    return arm
