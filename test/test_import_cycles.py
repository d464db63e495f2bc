"""No import cycles in instaseg_ros: neither at import time nor through deferred (function-level) imports.

The module graph comes from the source with ``ast`` (no module is imported): an edge ``a -> b``
for every ``import`` / ``from ... import`` in ``a`` that names ``b`` (the deepest existing module of
the name: ``from pkg import sub`` points at ``pkg.sub`` when that is a module). Imports under
``if TYPE_CHECKING:`` never run and are left out. Strongly connected components of more than one
module (scipy's ``connected_components(connection="strong")``) are the cycles.

Two graphs are checked: top-level imports only (a cycle there can fail at import time, depending
on which module is imported first), and all imports including those inside functions (a deferred
import hides a cycle from the interpreter but still ties two layers together, as
``evaluation/bag_eval.py`` <-> ``evaluation/live.py`` once did).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], deferred: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements of a block: module level (including ``if``/``try``/``with`` blocks) and, with
    ``deferred``, inside functions and classes too; never under ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _imports(node.body, deferred)
            yield from _imports(node.orelse, deferred)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _imports(block, deferred)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            yield from _imports(node.body, deferred)
        elif deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield from _imports(node.body, deferred)


def module_graph(root: Path, package: str, deferred: bool) -> dict[str, set[str]]:
    """Module -> modules of ``package`` it imports (see the module docstring)."""
    files = {_module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path)).body, deferred):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the importing module's package upwards
                    up = here[: len(here) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for name in names:
                while name not in files and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in files and name != mod:
                    graph[mod].add(name)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, each sorted, largest first."""
    names = sorted(graph)
    index = {n: i for i, n in enumerate(names)}
    pairs = [(index[a], index[b]) for a, bs in graph.items() for b in bs]
    rows, cols = (list(x) for x in zip(*pairs)) if pairs else ([], [])
    adjacency = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _n, labels = connected_components(adjacency, directed=True, connection="strong")
    groups = [[names[i] for i in np.flatnonzero(labels == k)] for k in np.unique(labels)]
    return sorted((g for g in groups if len(g) > 1), key=lambda g: (-len(g), g))


@pytest.mark.parametrize("deferred", [False, True], ids=["top-level", "with-deferred"])
def test_instaseg_ros_has_no_import_cycles(deferred: bool) -> None:
    cycles = import_cycles(module_graph(ROOT, "instaseg_ros", deferred))
    assert not cycles, "import cycles (strongly connected modules):\n" + "\n".join(map(str, cycles))


def test_the_checker_finds_cycles_and_ignores_what_never_runs(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    from pkg.a import x\n    return x\n",  # deferred: a -> b -> a
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n",
        "d.py": "import pkg.c\n",  # c -> d only for type checkers: no cycle
        "sub/__init__.py": "from .e import y\n",
        "sub/e.py": "try:\n    from ..sub import y\nexcept ImportError:\n    y = 1\n",  # sub <-> sub.e
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    top = module_graph(tmp_path, "pkg", deferred=False)
    assert top["pkg.a"] == {"pkg.b"} and top["pkg.b"] == set() and top["pkg.c"] == set()
    assert top["pkg.sub"] == {"pkg.sub.e"} and top["pkg.sub.e"] == {"pkg.sub"}
    assert import_cycles(top) == [["pkg.sub", "pkg.sub.e"]]
    full = module_graph(tmp_path, "pkg", deferred=True)
    assert import_cycles(full) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.e"]]
