"""The folder layout is the architecture: which part of labelaudit may import which, and no cycles.

Every import counts, module-level or inside a function. The allowed table is docs/design.md §1
in code; a new dependency is a design decision, made there first.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# part of labelaudit -> the parts it may import (besides itself and `files`, the atomic writers
# everything may use); `model` is not a part of labelaudit and may be imported by anything in it
ALLOWED: dict[str, set[str]] = {
    "files": set(),
    "distributed": set(),
    "data": set(),
    "metrics": {"data"},
    "confidence": {"data"},
    "predict": {"data"},
    "store": {"data"},
    "train": {"data", "metrics", "confidence", "predict", "distributed"},
    "teachers": {"data", "predict", "train"},
    "tracking": {"data", "store", "train"},
    "scan": {"data", "confidence", "predict", "store", "teachers", "distributed"},
    "bench": {"data", "confidence", "metrics", "scan", "store"},
    "export": {"data", "scan", "store"},
    "review": {"data", "scan", "store"},
    "report": {"data", "metrics", "scan", "store"},
    "demo": {"data", "bench", "export", "report", "scan", "store", "tracking", "train"},
    "cli": {"data", "bench", "demo", "export", "report", "review", "scan", "store", "teachers",
            "tracking", "train"},
    "__main__": {"cli"},
    "": set(),  # labelaudit/__init__.py
}


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of `known` that module `name` imports (``from pkg import submodule`` counts as
    the submodule)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                up = here[: len(here) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = {**_modules("labelaudit"), **_modules("model")}
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_model_never_imports_labelaudit():
    bad = {m: sorted(t for t in ts if t.startswith("labelaudit")) for m, ts in _graph().items() if m.startswith("model")}
    assert not {m: t for m, t in bad.items() if t}


def test_labelaudit_parts_import_only_what_the_design_allows():
    graph = _graph()
    parts = {_part(m) for m in graph if m.startswith("labelaudit")}
    assert parts <= set(ALLOWED), f"parts missing from the table: {parts - set(ALLOWED)}"
    bad = []
    for mod, targets in graph.items():
        if not mod.startswith("labelaudit"):
            continue
        for t in targets:
            if t.startswith("labelaudit") and _part(t) != _part(mod) and _part(t) not in ALLOWED[_part(mod)] | {"files"}:
                bad.append(f"{mod} -> {t}")
    assert not bad, "imports that climb the layers:\n" + "\n".join(sorted(bad))


def test_no_import_cycles_between_modules():
    graph = _graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # a package's __init__ that re-exports its submodules is not a cycle with them
    real = [c for c in cycles if not _reexport(c, graph)]
    assert not real, "import cycles:\n" + "\n".join(real)


def _reexport(cycle: str, graph: dict[str, set[str]]) -> bool:
    """A cycle closed only by a submodule importing its own package's __init__ (re-exports)."""
    nodes = cycle.split(" -> ")
    return any(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(nodes, nodes[1:]))
