"""The git commands the bisect runs, in the user's repository."""

from __future__ import annotations

from pathlib import Path

from .. import proc, signals
from ..errors import HarnessError, UsageError

GIT_TIMEOUT = 3600.0
"""Seconds a git command may take: a checkout across kernel releases on a slow disk."""


class Git:
    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, check: bool = True) -> proc.Completed:
        # SIGTERM/SIGHUP wait for git to finish: cut short, it would be killed and could
        # leave the user's repository half checked out with index.lock behind.
        with signals.deferred():
            done = proc.run(["git", "-C", str(self.repo), *args], check=False,
                            timeout=GIT_TIMEOUT)
        if check and done.returncode != 0:
            raise HarnessError(f"git {' '.join(args)} failed ({done.returncode}) in "
                               f"{self.repo}: {(done.stderr or done.stdout).strip()}")
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def git_dir(self) -> Path:
        path = Path(self.out("rev-parse", "--absolute-git-dir"))
        return path

    def commit(self, rev: str) -> str:
        proc = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise UsageError(f"unknown revision {rev!r} in {self.repo}")
        return proc.stdout.strip()

    def subject(self, sha: str) -> str:
        return self.out("log", "-1", "--format=%s", sha)

    def is_ancestor(self, a: str, b: str) -> bool:
        return self.run("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    def head(self) -> str:
        return self.out("rev-parse", "HEAD")

    def bisect_head(self) -> str:
        """The commit git bisect asks about: BISECT_HEAD in a --no-checkout bisect (ours),
        HEAD in one started by an older oomrace that checked commits out."""
        if (self.git_dir() / "BISECT_HEAD").is_file():
            return self.out("rev-parse", "BISECT_HEAD")
        return self.head()

    def bisecting(self) -> bool:
        return (self.git_dir() / "BISECT_START").is_file()

    def bisect_log(self) -> str:
        path = self.git_dir() / "BISECT_LOG"
        return path.read_text(errors="replace") if path.is_file() else ""
