"""A candidate applied to a base tree as `git am` would: in a private git repository
holding the base's copies of the files the candidate touches, with `git am
--ignore-whitespace` (the damage mail does to blanks, as `patch -l` forgives it). The
change as applied comes back as a plain diff against the base, for the kernel build."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import UsageError
from .candidates import Candidate, PatchMail

GIT_TIMEOUT = 120.0
_GIT_IDENTITY = ("-c", "user.name=oomrace", "-c", "user.email=oomrace@localhost",
                 "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null")


@dataclass(frozen=True)
class ApplyResult:
    applied: bool
    first_error: str  # git am's first error line ("" when it applied)
    failures: tuple[str, ...]  # every file and hunk that does not apply, from git apply -v
    patch: Path | None  # the change as applied: a diff against the base


def touched_paths(patches: Sequence[PatchMail]) -> list[str]:
    """The base files a candidate reads or writes; a path that would leave the tree is
    refused (it comes from a mail)."""
    paths: list[str] = []
    for mail in patches:
        for f in mail.files:
            names = [f.path] + [h[4:].split("\t")[0].strip()[2:] for h in f.header
                                if h.startswith("--- a/")]
            for name in names:
                parts = Path(name).parts
                if not name or Path(name).is_absolute() or ".." in parts:
                    raise UsageError(f"{mail.message.message_id}: the diff names {name!r}, a "
                                     "path outside the tree")
                if name not in paths:
                    paths.append(name)
    return paths


def _git(repo: Path, *args: str, check: bool = True) -> proc.Completed:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(repo),
           "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", "GIT_COMMITTER_DATE": "@0 +0000"}
    return proc.run(["git", *_GIT_IDENTITY, "-C", str(repo), *args], check=check, env=env,
                    timeout=GIT_TIMEOUT)


def mbox_of(patches: Sequence[PatchMail]) -> str:
    """The candidate as `git format-patch` would have mailed it: one message per patch."""
    out = []
    for mail in patches:
        message = "\n".join(">" + line if line.startswith("From ") else line
                            for line in mail.commit_message.splitlines())
        out.append(f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                   f"From: {mail.from_header}\nDate: {mail.message.date}\n"
                   f"Subject: [PATCH] {mail.title}\n\n{message}\n---\n{mail.diff_text()}\n")
    return "".join(out)


def _base_repo(repo: Path, base: Path, paths: Sequence[str]) -> None:
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    for rel in paths:
        src = base / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, repo / rel)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "base")


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "fatal:"))]
    return (errors or lines or ["git am failed"])[0]


def _failing_hunks(repo: Path, patches: Sequence[PatchMail]) -> tuple[str, ...]:
    """Every hunk git apply rejects, named by file and @@ header (git am stops at the first)."""
    failures: list[str] = []
    for n, mail in enumerate(patches):
        patch = repo.parent / f"patch-{n}.diff"
        patch.write_text(mail.diff_text())
        done = _git(repo, "apply", "--ignore-whitespace", "--reject", "-v", str(patch),
                    check=False)
        current = None
        for line in done.output.splitlines():
            if m := re.match(r"^Applying patch (\S+) with \d+ reject", line):
                current = m.group(1)
            elif (m := re.match(r"^Rejected hunk #(\d+)\.", line)) and current:
                hunks = next((f.hunks for f in mail.files if f.path == current), ())
                index = int(m.group(1)) - 1
                header = hunks[index].header if index < len(hunks) else f"hunk #{index + 1}"
                failures.append(f"{current}: {header}")
            elif line.startswith("error:") and re.search(
                    r"does not exist|No such file|already exists|corrupt patch", line):
                failures.append(line[len("error:"):].strip())  # a whole file, not a hunk
        _git(repo, "reset", "-q", "--hard", check=False)
    return tuple(dict.fromkeys(failures))


def apply_candidate(candidate: Candidate, base: Path, workdir: Path) -> ApplyResult:
    """Apply `candidate` onto the files of the tree `base` in `workdir` (made afresh)."""
    if not candidate.appliable:
        return ApplyResult(False, candidate.note or candidate.kind.value, (), None)
    workdir.mkdir(parents=True, exist_ok=True)
    repo = workdir / "git"
    _base_repo(repo, base, touched_paths(candidate.patches))
    mbox = workdir / "candidate.mbox"
    mbox.write_text(mbox_of(candidate.patches))
    done = _git(repo, "am", "--ignore-whitespace", "--no-3way", str(mbox), check=False)
    if done.returncode != 0:
        error = _first_error(done.output)
        _git(repo, "am", "--abort", check=False)
        return ApplyResult(False, error, _failing_hunks(repo, candidate.patches), None)
    diff = _git(repo, "diff", "--no-color", "--no-ext-diff", "HEAD~" + str(
        len(candidate.patches)), "HEAD").stdout
    patch = workdir / f"{candidate.label}.patch"
    patch.write_text(diff)
    return ApplyResult(True, "", (), patch)


def applied_diff(base: Path, patches: Sequence[Path], workdir: Path) -> str | None:
    """A recipe's patches (-p1 files) as `git diff` against the base's files, the form
    apply_candidate gives: two changes are the same when these texts are equal. None
    when they do not apply."""
    from ..kernel.build.tree import patched_paths

    texts = [p.read_text(errors="replace") for p in patches]
    paths = [rel for text in texts for rel in patched_paths(text)]
    if any(Path(rel).is_absolute() or ".." in Path(rel).parts for rel in paths):
        return None
    repo = workdir / "git"
    _base_repo(repo, base, list(dict.fromkeys(paths)))
    for patch in patches:
        if _git(repo, "apply", str(patch.resolve()), check=False).returncode != 0:
            return None
    _git(repo, "add", "-A")
    return _git(repo, "diff", "--no-color", "--no-ext-diff", "--cached", "HEAD").stdout
