"""The tree is the architecture: every import arrow points down (docs/design.md).

Read from the source with ``ast`` (function-level imports included, nothing is imported):
kernels/ imports only kernels/; envs/ imports only envs/ and errors.py; config may ask envs,
never the other way round; no fastasync module imports a name that starts with ``_`` from
another module; and there is no import circle among the modules.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "fastasync")


def _modules() -> dict:
    out = {}
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: str) -> list:
    """(target module, imported name or None, line) of every fastasync import in a module."""
    is_pkg = path.endswith("__init__.py")
    out = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("fastasync"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("fastasync")]
    return out


EDGES = {m: _imports(m, p) for m, p in MODULES.items()}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_checker_reads_relative_and_function_level_imports():
    edges = {t for t, _, _ in EDGES["fastasync.trainer"]}
    assert "fastasync.config" in edges and "fastasync.state" in edges  # module level, and inside __init__
    assert ("fastasync.envs.base", "EnvError") in {(t, n) for t, n, _ in EDGES["fastasync.envs.families"]}
    assert len(MODULES) > 40


@pytest.mark.parametrize("package, allowed", [
    ("fastasync.kernels", ("fastasync.kernels",)),
    ("fastasync.envs", ("fastasync.envs", "fastasync.errors")),
    ("fastasync.errors", ()),
])
def test_rooms_import_nothing_above_them(package, allowed):
    bad = [(m, t, line) for m, edges in EDGES.items() if _in(m, package)
           for t, _, line in edges if not _in(t, package) and not any(_in(t, a) for a in allowed)]
    assert not bad, f"{package} imports from above it: {bad}"


def test_no_module_imports_a_private_name_of_another():
    bad = [(m, t, n, line) for m, edges in EDGES.items() for t, n, line in edges
           if n is not None and n.startswith("_") and t != m]
    assert not bad, bad


def test_no_import_circle():
    # a submodule importing its own package (``from . import x``) is no arrow up
    graph = {m: {t for t, _, _ in edges if t in MODULES and t != m and not _in(m, t)} for m, edges in EDGES.items()}
    state, stack, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not circles, " | ".join(" -> ".join(c) for c in circles)


def test_config_may_ask_envs_but_envs_never_ask_config():
    assert any(_in(t, "fastasync.envs") for t, _, _ in EDGES["fastasync.config"])
    assert not [m for m, edges in EDGES.items() if _in(m, "fastasync.envs") for t, _, _ in edges
                if t in ("fastasync.config", "fastasync.api", "fastasync.trainer", "fastasync.cli", "fastasync.evaluate")]


def test_ray_is_imported_only_in_distributed():
    bad = []
    for m, path in MODULES.items():
        if _in(m, "fastasync.distributed"):
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [(m, n) for n in names if n == "ray" or n.startswith("ray.")]
    assert not bad, bad
