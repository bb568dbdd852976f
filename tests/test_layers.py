"""The architecture's import rules, read from the source (ast over every module of pmexp).

- no import cycle, counting imports inside functions too (a lazy import hides a cycle, it does not remove it);
- the library (pmexp.masks, pmexp.dropout, pmexp.tempo) imports nothing of the framework, the report,
  the entry modules, Hydra, OmegaConf or W&B;
- the framework (pmexp.experiment) never imports the report, which only reads its records;
- nothing imports an entry module (pmexp.train, .maxbatch, .sync, .dashboard, report.__main__): they
  hold argument parsing or @hydra.main only, so nothing importable is ever __main__.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pmexp"
LIBRARY = ("pmexp.masks", "pmexp.dropout", "pmexp.tempo")
ENTRY_MODULES = ("pmexp.train", "pmexp.maxbatch", "pmexp.sync", "pmexp.dashboard", "pmexp.report.__main__",
                 "pmexp.bench.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """Every module `name` imports anywhere in its file; `from pkg import sub` counts as pmexp's `pkg.sub`."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            found.update(subs or [base])
    return found


GRAPH = {name: {m for m in _imports(name) if m in MODULES and m != name} for name in MODULES}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_walk_sees_the_package():
    assert {"pmexp.experiment.loop", "pmexp.dropout.surgery", "pmexp.report.gather", "pmexp.train"} <= set(MODULES)
    assert "pmexp.experiment.records" in GRAPH["pmexp.experiment.recorder"]
    assert "pmexp.experiment.metrics" in GRAPH["pmexp.experiment.loop"]  # `from pmexp.experiment import metrics`


def test_no_import_cycle():
    cycles, state = [], dict.fromkeys(GRAPH, 0)  # 0 unseen, 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state[nxt] == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in GRAPH:
        if state[start] == 0:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, LIBRARY)])
def test_library_imports_neither_framework_nor_its_tools(module):
    banned = ("hydra", "omegaconf", "wandb", "pmexp.experiment", "pmexp.report", "pmexp.bench", *ENTRY_MODULES)
    bad = sorted(m for m in _imports(module) if _within(m, banned))
    assert not bad, f"{module} (library) imports {bad}"


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, ("pmexp.experiment",))])
def test_framework_never_imports_the_report(module):
    bad = sorted(m for m in _imports(module) if _within(m, ("pmexp.report",)))
    assert not bad, f"{module} imports {bad}: the report reads the framework's records, never the other way"


def test_nothing_imports_an_entry_module():
    bad = sorted((name, m) for name, deps in GRAPH.items() for m in deps if m in ENTRY_MODULES)
    assert not bad, f"entry modules are imported by {bad}: move what they share into the framework"
