"""Fetching and unpacking Debian packages for any guest architecture with apt-get, and
installing a host package (a kernel source tarball) when a build needs it."""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path

from . import cache, proc
from .errors import HarnessError, KernelError, MissingToolError

log = logging.getLogger(__name__)


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    package = "apt" if argv[0].startswith("apt") else "dpkg"
    return proc.run(argv, cwd=cwd, timeout=timeout, package=package).stdout


@functools.cache
def native_arch() -> str:
    return _run(["dpkg", "--print-architecture"]).strip()


def ensure_architecture(debian_arch: str) -> None:
    """Make apt know `debian_arch` (dpkg --add-architecture + apt-get update) when foreign."""
    if debian_arch == native_arch():
        return
    foreign = _run(["dpkg", "--print-foreign-architectures"]).split()
    if debian_arch in foreign:
        return
    if os.geteuid() != 0:
        raise HarnessError(
            f"apt does not know the {debian_arch} architecture; run as root:\n"
            f"  sudo dpkg --add-architecture {debian_arch} && sudo apt-get update"
        )
    _run(["dpkg", "--add-architecture", debian_arch])
    _run(["apt-get", "update", "-q"])


def _qualified(package: str, debian_arch: str) -> str:
    return f"{package}:{debian_arch}"


APT_LISTS = Path("/var/lib/apt/lists")


def _apt_show(qualified: str) -> str:
    """`apt-cache show` of the candidate, remembered on disk until apt's lists change
    (apt-cache is slow enough to dominate a warm start otherwise)."""
    try:
        lists_state = APT_LISTS.stat().st_mtime_ns
    except OSError:
        lists_state = 0
    memo = cache.cache_root() / "apt" / f"{cache.digest(qualified, lists_state)}.txt"
    if memo.is_file():
        return memo.read_text()
    text = _run(["apt-cache", "show", "--no-all-versions", qualified])
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.rename(memo)
    return text


def package_field(package: str, debian_arch: str, field: str) -> str:
    """One field of the candidate version's record, e.g. Version or Depends."""
    ensure_architecture(debian_arch)
    text = _apt_show(_qualified(package, debian_arch))
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return value.strip()
    raise HarnessError(f"apt-cache show {package}:{debian_arch} has no {field} field")


def package_version(package: str, debian_arch: str) -> str:
    try:
        return package_field(package, debian_arch, "Version")
    except HarnessError as first:
        if os.geteuid() != 0:
            raise HarnessError(
                f"{first}\napt has no record of {package}:{debian_arch}; "
                "try: sudo apt-get update"
            ) from first
        _run(["apt-get", "update", "-q"])
        return package_field(package, debian_arch, "Version")


def download(package: str, debian_arch: str, dest: Path) -> Path:
    """`apt-get download` the candidate .deb of package:arch into dest; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.glob("*.deb"))
    _run(["apt-get", "download", "-q", _qualified(package, debian_arch)], cwd=dest)
    new = sorted(set(dest.glob("*.deb")) - before)
    if not new:
        matches = sorted(dest.glob(f"{package}_*_{debian_arch}.deb"))
        if not matches:
            raise HarnessError(f"apt-get download {package}:{debian_arch} produced no .deb")
        return matches[-1]
    return new[0]


def extract(deb: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest)])


# --- host packages ------------------------------------------------------------------------


def installed_version(package: str) -> str | None:
    """The version of `package` installed on the host; None when it is not installed."""
    done = proc.run(["dpkg-query", "-W", "-f", "${Status}\t${Version}", package],
                    check=False, package="dpkg")
    status, _, version = done.stdout.partition("\t")
    return version if done.returncode == 0 and status.endswith(" installed") else None


def install(package: str, what: str, timeout: float = 3600.0) -> None:
    """`apt-get install` a host package (`what` it is, for the message when sudo is
    missing); as root or through `sudo -n`, with one `apt-get update` when apt does not
    know the package yet."""
    if shutil.which("apt-get") is None:
        raise MissingToolError("apt-get", "apt")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise MissingToolError(f"{package} ({what})", package)
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.info("installing %s with apt-get", package)
    argv = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", package]
    done = proc.run(argv, env=env, check=False, package="apt", timeout=timeout)
    if done.returncode != 0 and "Unable to locate package" in done.stderr:
        proc.run([*prefix, "apt-get", "update"], env=env, check=False, package="apt")
        done = proc.run(argv, env=env, check=False, package="apt", timeout=timeout)
    if done.returncode != 0:
        raise KernelError(
            f"could not install {package}: {' '.join(argv)} failed\n"
            f"{done.output.strip()[-2000:]}\n"
            f"install it yourself with: sudo apt-get install {package}"
        )
