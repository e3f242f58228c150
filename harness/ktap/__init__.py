"""KTAP, the kernel's test output format: a parser of what guests print (`parse`), and
the KTAP form of our own runs and lab cells (`write`, imported on its own: it needs the
run's types).

    from harness import ktap

    doc = ktap.parse(guest_output)          # never raises; doc.errors lists what was off
    for path, result in doc.flatten():      # (("suite", "case"), Result.PASS), ...
        ...
    doc.complete                            # False when the output stopped mid-run
    [t for _, t in doc.walk() if t.result is ktap.Result.CRASHED]
    doc.to_json()                           # with schema_version, for a JSON file
"""

from .model import KtapDocument, KtapTest, Result
from .parse import parse

__all__ = ["KtapDocument", "KtapTest", "Result", "parse"]
