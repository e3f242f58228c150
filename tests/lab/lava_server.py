"""A LAVA instance on this machine for tests/lab/test_lava.py's full-server test: Debian 12's
lava-server (PostgreSQL, gunicorn on 127.0.0.1, the scheduler), one lava-worker and one
`qemu` device, and a user with a token. Needs root and the packages of
configs/host-packages-lava-server.txt (`./bootstrap lava-server`). Every process it starts
is ended by its pid when the context ends; the database and the device stay for the next
run (set up again idempotently: about a minute the first time, seconds after)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PORT = 8000  # gunicorn's own default, on loopback only
URL = f"http://127.0.0.1:{PORT}"
WORKER = "oomrace-worker"
DEVICE = "oomrace-qemu-01"
USER = "oomrace-ci"
DEVICES = Path("/etc/lava-server/dispatcher-config/devices")
PACKAGES = ("lava-server", "postgresql", "lava-dispatcher")


@dataclass
class Instance:
    url: str
    user: str
    token_file: Path


def missing() -> str | None:
    """Why no instance can be started here, or None."""
    if os.geteuid() != 0:
        return "the LAVA server test needs root"
    for tool in ("lava-server", "lava-worker", "gunicorn3", "pg_ctlcluster", "lava-run"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: ./bootstrap lava-server"
    return None


def _manage(*argv: str, check: bool = True) -> str:
    done = subprocess.run(["lava-server", "manage", *argv], capture_output=True, text=True,
                          timeout=600, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"lava-server manage {argv[0]} failed: {done.stderr[-1500:]}")
    return done.stdout


def _setup_database() -> bool:
    """The cluster up and lava-server's database made; True when we started the cluster
    (and so stop it afterwards)."""
    was_up = subprocess.run(["pg_isready"], capture_output=True, check=False,
                            timeout=30).returncode == 0
    if not was_up:
        subprocess.run(["pg_ctlcluster", "15", "main", "start"], capture_output=True,
                       check=False, timeout=120)
    subprocess.run(["pg_isready", "-t", "60"], check=True, capture_output=True, timeout=90)
    # The package's own configuration step: database, roles, migrations (idempotent).
    subprocess.run(["/usr/bin/python3", "/usr/share/lava-server/postinst.py"],
                   capture_output=True, check=True, timeout=900)
    return not was_up


def _setup_objects(token_file: Path) -> str:
    """The user, device type, worker and device; the user's token into token_file; the
    worker's token returned."""
    _manage("users", "add", USER, "--superuser", "--staff", "--passwd",
            secrets.token_hex(12), check=False)  # already there after the first run
    out = _manage("tokens", "add", "--user", USER)
    token_file.write_text(out.strip().splitlines()[-1].split()[-1] + "\n")
    token_file.chmod(0o600)
    _manage("device-types", "add", "qemu", check=False)
    _manage("workers", "add", WORKER, check=False)
    _manage("devices", "add", "--device-type", "qemu", "--worker", WORKER, DEVICE,
            check=False)
    (DEVICES / f"{DEVICE}.jinja2").write_text("{% extends 'qemu.jinja2' %}\n")
    _manage("devices", "update", "--health", "GOOD", DEVICE)
    return _manage("shell", "-c", "from lava_scheduler_app.models import Worker; "
                   f"print(Worker.objects.get(hostname='{WORKER}').token)").strip()


def _wait_http(deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{URL}/api/v0.2/", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"lava-server did not answer on {URL} within the time limit")


@contextmanager
def instance(workdir: Path) -> Iterator[Instance]:
    """Database, objects, then gunicorn, the scheduler and the worker, ended by pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    started_db = _setup_database()
    token_file = workdir / "token"
    worker_token = _setup_objects(token_file)
    # The worker reads its token from its config file, not from its command line.
    worker_conf = workdir / "lava-worker.env"
    worker_conf.write_text(f"TOKEN=\"--token {worker_token}\"\n")
    worker_conf.chmod(0o600)
    logs = {name: (workdir / f"{name}.out").open("w") for name in ("web", "sched", "worker")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            ["gunicorn3", "lava_server.wsgi", "--log-file", str(workdir / "gunicorn.log"),
             "-u", "lavaserver", "-g", "lavaserver", "--worker-class", "eventlet",
             "--workers", "2", "--bind", f"127.0.0.1:{PORT}"],
            stdout=logs["web"], stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            ["lava-server", "manage", "lava-scheduler", "--log-file",
             str(workdir / "scheduler.log")], stdout=logs["sched"], stderr=subprocess.STDOUT))
        _wait_http(time.monotonic() + 120)
        procs.append(subprocess.Popen(
            ["sh", "-c", f". {worker_conf} && exec lava-worker --url {URL}/ $TOKEN --name "
             f"{WORKER} --log-file {workdir / 'worker.log'}"],
            stdout=logs["worker"], stderr=subprocess.STDOUT))
        yield Instance(URL, USER, token_file)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()
        if started_db:
            subprocess.run(["pg_ctlcluster", "15", "main", "stop"], capture_output=True,
                           check=False, timeout=120)
