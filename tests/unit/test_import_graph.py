"""The import graph (issue 20): booting a guest brings no kernel-build module along, and the
longest chain of harness modules importing one another stays short, so a change low in
the house does not reach everything above it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "harness"
MAX_CHAIN = 14  # modules, the first and the last included
BUILD_WING = "harness.kernel.build"


def test_booting_imports_no_build_module() -> None:
    """A fresh interpreter: what `import harness.guest` loads, and nothing else."""
    probe = ("import json, sys, harness.guest; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('harness'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=HARNESS.parent, timeout=60)
    loaded = json.loads(done.stdout)
    assert "harness.kernel.image" in loaded  # the probe saw the kernel wing it needs
    build = [m for m in loaded if m == BUILD_WING or m.startswith(BUILD_WING + ".")]
    assert not build, f"harness.guest pulls in the build wing: {build}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(HARNESS.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in HARNESS.rglob("*.py") if "_project" not in p.parts}


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: at module level, not under
    `if TYPE_CHECKING:` (a function's own imports run later, if ever)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.Try):  # an optional import: still at import time
            found += [n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return found


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a `from X import ...` names, relative levels resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if not node.level:
        return node.module or ""
    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """module -> the harness modules its module-level imports depend on.

    `from P import name` depends on the submodule P.name when there is one; else, when
    P's own imports bring `name` from another module (a package re-exporting its parts),
    on the module that defines it, so a package's facade adds no floor for a name it
    only passes on. `import P` and `from . import P` depend on P itself, facade and all."""
    modules = _modules()
    parsed = {m: _top_level_imports(ast.parse(p.read_text())) for m, p in modules.items()}
    brought: dict[str, dict[str, tuple[str, str]]] = {
        m: {a.asname or a.name: (_absolute(m, modules[m], n), a.name)
            for n in nodes if isinstance(n, ast.ImportFrom) for a in n.names}
        for m, nodes in parsed.items()}

    def defining(base: str, name: str, seen: frozenset[str] = frozenset()) -> str:
        if f"{base}.{name}" in modules:
            return f"{base}.{name}"
        origin = brought.get(base, {}).get(name)
        if origin is None or base in seen or origin[0] not in modules:
            return base
        return defining(*origin, seen | {base})

    graph: dict[str, set[str]] = {}
    for module, nodes in parsed.items():
        edges: set[str] = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            else:
                base = _absolute(module, modules[module], node)
                edges |= {defining(base, a.name) for a in node.names}
        graph[module] = {e for e in edges if e in modules and e != module}
    return graph


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path of imports; the graph must have no cycle (checked)."""
    visiting: set[str] = set()

    @cache
    def chain(name: str) -> tuple[str, ...]:
        assert name not in visiting, f"import cycle through {name}"
        visiting.add(name)
        best = max((chain(dep) for dep in sorted(graph[name])), key=len, default=())
        visiting.discard(name)
        return (name, *best)

    return list(max((chain(m) for m in sorted(graph)), key=len))


def test_the_graph_sees_known_imports() -> None:
    graph = import_graph()
    assert "harness.kernel.image" in graph["harness.guest"]
    assert "harness.kernel.build.builder" in graph["harness.kernel.resolve"]  # from . import
    assert "harness.arches" in graph["harness.kernel.image"]
    # A name kernel_log re-exports is the module's that defines it; the package itself is
    # what `from . import kernel_log` depends on.
    assert "harness.kernel_log.taxonomy" in graph["harness.machine"]
    assert "harness.kernel_log" in graph["harness.workload"]


def test_the_longest_import_chain_is_short() -> None:
    chain = longest_chain(import_graph())
    assert len(chain) <= MAX_CHAIN, f"{len(chain)} modules deep: {' -> '.join(chain)}"
