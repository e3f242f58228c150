"""The private copy of a kernel tree a build patches: a farm of hard links of the source,
where a file is given its own copy before a patch touches it (the source is never
written), and the toolchain compatibility fixes an old tree needs (kernels/compat/).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ... import proc
from ...errors import KernelError, MissingToolError, UsageError
from ...paths import data_path
from ..version import version_tuple
from .source import SOURCE_TIMEOUT, Source, run_text


def link_tree(source: Source, dest: Path) -> None:
    """Make `dest` a copy of the source tree built from hard links (falls back to copying)."""
    if source.git_files is None:
        done = proc.run(["cp", "-al", str(source.tree), str(dest)], check=False,
                        timeout=SOURCE_TIMEOUT)
        if done.returncode == 0:
            return
        shutil.rmtree(dest, ignore_errors=True)
        if "cross-device" not in done.stderr.lower() and "invalid cross" not in done.stderr.lower():
            raise KernelError(f"cp -al {source.tree} {dest} failed: {done.stderr.strip()}")
        run_text(["cp", "-a", "--reflink=auto", str(source.tree), str(dest)])
        return
    dest.mkdir(parents=True)
    can_link = True
    for rel in source.git_files:
        src = source.tree / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree but not committed
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            out.symlink_to(os.readlink(src))
            continue
        if src.is_dir():  # a submodule
            continue
        if can_link:
            try:
                os.link(src, out)
                continue
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                can_link = False
        shutil.copy2(src, out)


def patched_paths(patch_text: str) -> list[str]:
    """Paths (as after -p1) of the files a unified or git diff reads or writes."""
    paths: list[str] = []

    def add(raw: str, strip: int = 1) -> None:
        name = raw.split("\t")[0].strip()
        if name == "/dev/null" or not name:
            return
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1]
        parts = name.split("/")[strip:]
        if parts and ".." not in parts:
            rel = "/".join(parts)
            if rel not in paths:
                paths.append(rel)

    for line in patch_text.splitlines():
        if line.startswith(("--- ", "+++ ")):
            add(line[4:])
        elif line.startswith(("rename from ", "copy from ")):
            add(line.split(" ", 2)[2], strip=0)
    return paths


def unshare(path: Path) -> None:
    """Give `path` its own inode, so that writing to it cannot reach a hard-linked twin."""
    if path.is_symlink() or not path.is_file():
        return
    if path.stat().st_nlink <= 1:
        return
    tmp = path.with_name(f".{path.name}.oomrace-unshare")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


def apply_patch(tree: Path, patch: Path, log: IO[str] | None = None) -> None:
    """Apply `patch` with -p1 to `tree` (a private copy); KernelError names failing hunks."""
    if shutil.which("patch") is None:
        raise MissingToolError("patch", "patch")
    try:
        text = patch.read_text(errors="replace")
    except FileNotFoundError:
        raise UsageError(f"patch {patch} does not exist") from None
    if not patched_paths(text):
        raise KernelError(f"patch {patch} contains no diff")
    for rel in patched_paths(text):
        target = tree / rel
        if target.is_symlink():
            resolved = target.resolve()
            if resolved.is_relative_to(tree.resolve()):
                unshare(resolved)
        unshare(target)
    reject = tree.parent / f".{patch.name}.rej"
    reject.unlink(missing_ok=True)
    argv = [
        "patch", "-p1", "--forward", "--batch", "--fuzz=0", "--no-backup-if-mismatch",
        f"--reject-file={reject}", "-d", str(tree), "-i", str(patch.resolve()),
    ]  # fmt: skip
    done = proc.run(argv, check=False)
    output = done.output.strip()
    if log is not None:
        log.write(f"$ patch -p1 < {patch}\n{output}\n")
    if done.returncode != 0:
        hunks = reject.read_text(errors="replace").strip() if reject.is_file() else ""
        failed = re.findall(r"^Hunk #\d+ FAILED at \d+.*$", output, re.M)
        msg = f"patch {patch} does not apply"
        if failed:
            msg += f" ({'; '.join(failed)})"
        msg += f":\n{output}"
        if hunks:
            msg += f"\nrejected hunk(s):\n{hunks[:4000]}"
        raise KernelError(msg)


# --- toolchain compatibility fixes -----------------------------------------------------

COMPAT_DIR = data_path("kernels") / "compat"


@dataclass(frozen=True)
class CompatFix:
    """A patch an old tree needs to build with today's compilers (kernels/compat/)."""

    patch: Path
    since: tuple[int, int, int]
    before: tuple[int, int, int]
    why: str


def compat_fixes(version: str, table: Path | None = None) -> list[CompatFix]:
    """The fixes a tree of `version` needs, in table order."""
    import tomllib

    table = table or COMPAT_DIR / "compat.toml"
    try:
        entries = tomllib.loads(table.read_text()).get("fix", [])
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{table}: {e}") from None
    fixes = []
    for entry in entries:
        try:
            fix = CompatFix(table.parent / entry["patch"], version_tuple(entry["since"]),
                            version_tuple(entry["before"]), str(entry["why"]))
        except (KeyError, TypeError) as e:
            raise UsageError(f"{table}: each [[fix]] needs patch, since, before, why ({e})") \
                from None
        if fix.since <= version_tuple(version) < fix.before:
            fixes.append(fix)
    return fixes


def apply_compat(tree: Path, fix: CompatFix, log: IO[str]) -> bool:
    """Apply `fix` to our copy unless the tree already has it; whether it was applied."""
    dry = proc.run(
        ["patch", "-p1", "--forward", "--batch", "--dry-run", "--fuzz=0", "-d", str(tree),
         "-i", str(fix.patch)],
        check=False,
    )
    if dry.returncode != 0:
        log.write(f"# compat fix {fix.patch.name} skipped: it does not apply, the tree "
                  "already has it or another form of it\n")
        return False
    log.write(f"# compat fix {fix.patch.name}: {fix.why}\n")
    apply_patch(tree, fix.patch, log)
    return True
