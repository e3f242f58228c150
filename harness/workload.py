"""What runs inside a booted guest. Each workload returns a status the verdict reads:
clean, corrupted or error, plus details for the result JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import HarnessError
from .guest import Guest


@dataclass
class WorkloadResult:
    name: str
    status: str  # clean | corrupted | error
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, **self.details}


class Workload(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, guest: Guest) -> WorkloadResult: ...


@dataclass(frozen=True)
class SmokeWorkload:
    """Proves the guest works end to end: both runners, exit codes, a guest program."""

    name: str = "smoke"
    timeout: float = 60.0

    def run(self, guest: Guest) -> WorkloadResult:
        checks: list[dict[str, Any]] = []
        runners = [r for r in (guest.serial, guest.ssh) if r is not None]
        for runner in runners:
            hello = runner.run(["oomrace-hello"], self.timeout)
            false = runner.run(["sh", "-c", "exit 3"], self.timeout)
            machine = None
            if hello.ok:
                try:
                    machine = json.loads(hello.stdout.strip().splitlines()[-1])["machine"]
                except (ValueError, KeyError, IndexError):
                    machine = None
            checks.append({
                "runner": runner.name,
                "hello_exit_code": hello.exit_code,
                "guest_machine": machine,
                "exit_code_carried": false.exit_code == 3,
            })
        ok = bool(checks) and all(
            c["hello_exit_code"] == 0 and c["guest_machine"] == guest.arch.name
            and c["exit_code_carried"] for c in checks
        )
        if guest.options.ssh and guest.ssh is None:
            ok = False
        return WorkloadResult(self.name, "clean" if ok else "error", {"checks": checks})


WORKLOADS: dict[str, Workload] = {"smoke": SmokeWorkload()}


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        valid = ", ".join(sorted(WORKLOADS))
        raise HarnessError(f"unknown scenario {name!r}; valid scenarios: {valid}") from None
