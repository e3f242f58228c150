"""KTAP, the kernel's test output format: a parser of what guests print (`parse`), and
the KTAP form of our own runs and lab cells (`write`)."""

from .model import KtapDocument, KtapTest, Result
from .parse import parse

__all__ = ["KtapDocument", "KtapTest", "Result", "parse"]
