"""The module map of ARCHITECTURE.md as a test: every import in granian/ goes to its own layer or
one below it.

    base  <-  sans-io (http1, websocket, http2)  <-  apps  <-  config  <-  server  <-  supervisor
          <-  cli  <-  facade

Every `import` / `from ... import` statement counts, wherever it is: at module level, inside a
function (the lazy imports that used to dodge import cycles) and under `if TYPE_CHECKING:`. The
last ones cost nothing at run time, but the rule "apps speak only to `_types`, never to
`granian.server`" is about what a module knows of, not only about what it loads: an adapter that
annotates with `server.cycle.Cycle` is still tied to the HTTP/1 server. Relative imports are
resolved against the importing module's package; `from pkg import name` counts as an import of
`pkg.name` when that is a module.

Three more rules ride on the same import graph:
- the sans-I/O layer never imports an I/O module (asyncio, socket, ssl, selectors, ...): bytes
  in, events out, the server owns the socket (ARCHITECTURE.md, "no I/O");
- only the sans-I/O wrappers call the C core (`granian._native`): one thin boundary, its errors
  mapped in one place (ARCHITECTURE.md habit 4);
- the worker process never loads the master's heavy modules (docs/internals.md section 4):
  what `granian.supervisor.workerproc` imports at run time, followed through function-level
  imports too, reaches none of pydantic, pydantic-settings, click, psutil, python-dotenv or
  `granian.settings`. tests/test_workerproc.py checks the same in a real worker's `sys.modules`;
  this finds the lazy import that test's requests happen not to run.

While the cycle-core refactor (issue 11) is in flight, the imports it removes are listed in
KNOWN_VIOLATIONS. The test fails on any violation not listed AND on any listed entry that no longer
occurs, so the list can only shrink, to empty.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "granian"

LAYERS = ("base", "sans-io", "apps", "config", "server", "supervisor", "cli", "facade")
RANK = {name: i for i, name in enumerate(LAYERS)}

# Module (or package prefix) -> (layer, why it sits there). The longest matching prefix wins;
# a module that matches none fails test_every_module_has_a_layer, so a new file gets placed here.
MAP: dict[str, tuple[str, str]] = {
    # base: the contracts and shared facts; stdlib only.
    "granian": ("base", "package root: __version__ at run time; its lazy Granian is in ALLOWED"),
    "granian.errors": ("base", "error types and worker exit statuses shared by every layer"),
    "granian._types": ("base", "the contracts as typing.Protocols and TypedDicts"),
    "granian.constants": ("base", "option enums, logger names, shared defaults: plain values"),
    "granian._headers": ("base", "RFC 9110 field helpers shared by carriers and adapters"),
    "granian._snapshot": ("base", "frozen plain copy of the settings, read by worker and master"),
    "granian.http": ("base", "Granian 2.x's HTTP1Settings/HTTP2Settings: plain dataclasses"),
    # sans-io: protocol rules over bytes, no I/O (see NO_IO).
    "granian._native": ("sans-io", "the C core (cffi); only the sans-I/O wrappers call it"),
    "granian.http1": ("sans-io", "sans-I/O HTTP/1.1: parser wrapper, limits, connection state"),
    "granian.websocket": ("sans-io", "sans-I/O WebSocket: handshake, codec, close rules"),
    "granian.http2": ("sans-io", "sans-I/O HTTP/2 session"),
    "granian.proxy": ("sans-io", "proxy-header resolver over the parser's header list"),
    "granian.health": ("sans-io", "health state and its pre-rendered HTTP/1 answers as bytes"),
    # apps: interface adapters; speak only to base types and sans-I/O helpers.
    "granian.apps": ("apps", "ASGI/RSGI/WSGI adapters, static files, loader, lifespan"),
    "granian.utils": ("apps", "Granian's public proxy-header middleware: wraps ASGI/WSGI apps"),
    # config: process set-up that the server, master and CLI read; apps get plain values.
    "granian.log": ("config", "logging set-up, run by the master and by each worker"),
    "granian.access_log": ("config", "access-log compiler: fed by server.metrics, checked by settings"),
    "granian.settings": ("config", "the pydantic settings model (server.embed, supervisor, cli)"),
    "granian._apikw": ("config", "API keyword -> settings field table (server.embed, supervisor.api)"),
    # the per-worker I/O, the master, the command line.
    "granian.server": ("server", "per-worker I/O: loop, connections, cycle core, carriers"),
    "granian.supervisor": ("supervisor", "master: bind, fork, signals, reap, reload, metrics"),
    "granian.cli": ("cli", "the click command"),
    # facade: names users import; nothing inside granian/ imports them.
    "granian.__main__": ("facade", "`python -m granian` -> cli"),
    "granian.rsgi": ("facade", "the public granian.rsgi names apps import; re-exports apps.rsgi"),
    "granian._granian": ("facade", "Granian's native-module names (RSGI errors, BUILD_GIL, procinfo)"),
}

# Imports against the map that are the design, not a slip: (importer, imported) -> why.
ALLOWED: dict[tuple[str, str], str] = {
    ("granian", "granian.supervisor.api"): (
        "`granian.Granian` is the public API; imported on attribute access only, so that "
        "`import granian` in a worker loads nothing of the master"
    ),
    ("granian.settings", "granian.server.tls"): (
        "load() runs tls.check_config so a bad --ssl-* option is exit 2 with nothing listening "
        "(issue 13); imported on use, only when an --ssl-* option is set; server.tls itself "
        "imports only granian.errors and the stdlib"
    ),
}

# Imports that go against the map and are not fixed yet. The test also fails when an entry no
# longer occurs: delete it then. (Empty since the cycle-core refactor of issue 11.)
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

# The sans-I/O layer never does I/O itself (stdlib top-level names).
NO_IO = frozenset({"asyncio", "socket", "ssl", "selectors", "select", "uvloop"})
# Who may import the C core: the sans-I/O wrappers (the parser, the frame codec, the h2 shim).
NATIVE_USERS = ("granian.http1", "granian.websocket", "granian.http2")
# What a worker process must never load (docs/internals.md section 4).
WORKER_ENTRY = "granian.supervisor.workerproc"
WORKER_HEAVY = (
    *("pydantic", "pydantic_settings", "pydantic_core", "click", "psutil", "dotenv"),
    "granian.settings",
)
# Functions a worker reaches (as a parent package) but never calls: their imports are not followed.
MASTER_ONLY: dict[tuple[str, str], str] = {
    ("granian.supervisor", "run"): "the master's main; a worker imports the package as workerproc's parent",
    ("granian.supervisor", "_bind"): "the master binds; a worker gets the listening socket by descriptor",
    ("granian.supervisor", "__getattr__"): "Hooks / exec_master, for the Python API and the CLI",
}
# Heavy modules a worker can still reach (the list may only shrink; empty since server.worker
# reads granian.constants.BUILD_GIL instead of granian._granian).
KNOWN_WORKER_HEAVY: set[str] = set()


@dataclass(frozen=True)
class Imp:
    importer: str
    target: str  # absolute dotted name
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`
    function: str  # the enclosing function's qualified name, "" at module level

    @property
    def in_function(self) -> bool:
        return bool(self.function)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_pkg else importer.split(".")[:-1]
    if node.level - 1 > len(base) - 1:
        raise AssertionError(f"{importer}:{node.lineno}: relative import beyond the top package")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[Imp]:
    """Every import statement of one module, resolved to absolute names (stdlib ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"

    # `scope` is the qualified name of the enclosing class/function ("" at module level);
    # `fn` is that name when a function encloses the import (class bodies run at import time).
    def walk(node: ast.AST, tc: bool, scope: str, fn: str) -> Iterator[Imp]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk_one(stmt, True, scope, fn)
                for stmt in child.orelse:
                    yield from walk_one(stmt, tc, scope, fn)
            else:
                yield from walk_one(child, tc, scope, fn)

    def walk_one(node: ast.AST, tc: bool, scope: str, fn: str) -> Iterator[Imp]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Imp(name, alias.name, node.lineno, tc, fn)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_pkg, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` mod.
                yield Imp(name, sub if sub in known else base, node.lineno, tc, fn)
        elif isinstance(node, ast.ClassDef):
            qual = f"{scope}.{node.name}" if scope else node.name
            yield from walk(node, tc, qual, fn)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            label = "<lambda>" if isinstance(node, ast.Lambda) else node.name
            qual = f"{scope}.{label}" if scope else label
            yield from walk(node, tc, qual, qual)
        else:
            yield from walk(node, tc, scope, fn)

    yield from walk(tree, False, "", "")


def layer_of(module: str) -> tuple[str, str] | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        hit = MAP.get(".".join(parts[:i]))
        if hit is not None:
            return hit
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Imp]]:
    mods = modules()
    # `granian._native` is a compiled extension: a target, never a source.
    known = set(mods) | {"granian._native"}
    return {name: list(imports_of(name, path, known)) for name, path in mods.items()}


def _granian_imports(graph: dict[str, list[Imp]]) -> Iterator[Imp]:
    for imps in graph.values():
        for imp in imps:
            if imp.target == "granian" or imp.target.startswith("granian."):
                yield imp


def violations(graph: dict[str, list[Imp]]) -> dict[tuple[str, str], list[Imp]]:
    found: dict[tuple[str, str], list[Imp]] = {}
    for imp in _granian_imports(graph):
        src, dst = layer_of(imp.importer), layer_of(imp.target)
        if src is None or dst is None:
            continue  # reported by test_every_module_has_a_layer
        if RANK[dst[0]] > RANK[src[0]] and (imp.importer, imp.target) not in ALLOWED:
            found.setdefault((imp.importer, imp.target), []).append(imp)
    return found


def _describe(pairs: dict[tuple[str, str], list[Imp]]) -> str:
    lines = []
    for (src, dst), imps in sorted(pairs.items()):
        where = ", ".join(
            f"line {i.line}"
            + (" (TYPE_CHECKING)" if i.type_checking else "")
            + (f" (in {i.function})" if i.function else "")
            for i in imps
        )
        lines.append(f"  {src} [{layer_of(src)[0]}] -> {dst} [{layer_of(dst)[0]}]: {where}")  # type: ignore[index]
    return "\n".join(lines)


def test_every_module_has_a_layer(graph: dict[str, list[Imp]]) -> None:
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, f"modules with no layer in tests/test_layering.py MAP: {unplaced}"
    targets = sorted({i.target for i in _granian_imports(graph)} - set(graph) - {"granian._native"})
    assert not targets, f"imports of granian modules that do not exist: {targets}"


def test_map_entries_name_real_modules(graph: dict[str, list[Imp]]) -> None:
    # A stale row (a module renamed or deleted) would silently stop placing anything.
    real = set(graph) | {"granian._native"}
    stale = sorted(p for p in MAP if not any(m == p or m.startswith(p + ".") for m in real))
    assert not stale, f"MAP rows that match no module: {stale}"
    assert all(layer in RANK for layer, _ in MAP.values())


def test_imports_follow_the_layers(graph: dict[str, list[Imp]]) -> None:
    found = violations(graph)
    new = {k: v for k, v in found.items() if k not in KNOWN_VIOLATIONS}
    gone = sorted(KNOWN_VIOLATIONS - set(found))
    msg = []
    if new:
        msg.append("imports against the module map (ARCHITECTURE.md):\n" + _describe(new))
    if gone:
        msg.append(
            "KNOWN_VIOLATIONS entries that no longer occur (remove them from tests/test_layering.py):\n"
            + "\n".join(f"  {s} -> {d}" for s, d in gone)
        )
    assert not msg, "\n".join(msg)


def test_allowed_exceptions_still_exist(graph: dict[str, list[Imp]]) -> None:
    present = {(i.importer, i.target) for i in _granian_imports(graph)}
    assert set(ALLOWED) <= present, f"ALLOWED entries that no longer occur: {sorted(set(ALLOWED) - present)}"


def test_sans_io_layer_does_no_io(graph: dict[str, list[Imp]]) -> None:
    bad = [
        f"  {imp.importer}:{imp.line} imports {imp.target}"
        for name, imps in graph.items()
        if (layer_of(name) or ("",))[0] == "sans-io"
        for imp in imps
        if imp.target.split(".")[0] in NO_IO
    ]
    assert not bad, "the sans-I/O layer imports I/O modules:\n" + "\n".join(bad)


def test_only_the_sans_io_wrappers_call_the_c_core(graph: dict[str, list[Imp]]) -> None:
    bad = [
        f"  {imp.importer}:{imp.line}"
        for imp in _granian_imports(graph)
        if imp.target == "granian._native" and not imp.importer.startswith(NATIVE_USERS)
    ]
    assert not bad, "granian._native imported outside http1/websocket/http2:\n" + "\n".join(bad)


def _runtime_closure(graph: dict[str, list[Imp]], start: str) -> dict[str, list[str]]:
    """Every module `start` can load at run time (TYPE_CHECKING blocks skipped; function-level
    imports followed; importing a module runs its parent packages), with one import chain each."""
    chains: dict[str, list[str]] = {start: [start]}
    todo = [start]
    while todo:
        mod = todo.pop()
        parts = mod.split(".")
        nexts = [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        nexts += [
            imp.target
            for imp in graph.get(mod, ())
            if not imp.type_checking
            and (mod, imp.target) not in ALLOWED
            and (mod, imp.function) not in MASTER_ONLY
        ]
        for target in nexts:
            if target not in chains:
                chains[target] = [*chains[mod], target]
                if target in graph:
                    todo.append(target)
    return chains


def test_worker_process_loads_none_of_the_masters_heavy_modules(graph: dict[str, list[Imp]]) -> None:
    chains = _runtime_closure(graph, WORKER_ENTRY)
    heavy = {h: chains[h] for h in WORKER_HEAVY if h in chains}
    new = ["  " + " -> ".join(chain) for h, chain in sorted(heavy.items()) if h not in KNOWN_WORKER_HEAVY]
    assert not new, "a worker could import the master's heavy modules:\n" + "\n".join(new)
    gone = sorted(KNOWN_WORKER_HEAVY - set(heavy))
    assert not gone, f"KNOWN_WORKER_HEAVY entries no longer reached (remove them): {gone}"
    present = {(i.importer, i.function) for imps in graph.values() for i in imps if i.function}
    stale = sorted(set(MASTER_ONLY) - present)
    assert not stale, f"MASTER_ONLY entries whose function imports nothing any more: {stale}"


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    # The checker itself, on a module written for it: a relative import inside a function and
    # one under TYPE_CHECKING must both be found and resolved.
    pkg = tmp_path / "granian" / "apps"
    pkg.mkdir(parents=True)
    src = pkg / "x.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..server.cycle import Cycle\n"
        "class C:\n"
        "    def f(self):\n"
        "        from .. import errors\n"
        "        import asyncio\n"
    )
    known = {"granian.errors", "granian.server.cycle"}
    name = ".".join(src.relative_to(tmp_path).with_suffix("").parts)
    got = {(i.target, i.type_checking, i.function) for i in imports_of(name, src, known)}
    assert got == {
        ("typing", False, ""),
        ("granian.server.cycle", True, ""),
        ("granian.errors", False, "C.f"),
        ("asyncio", False, "C.f"),
    }
    fake = {name: list(imports_of(name, src, known))}
    assert set(violations(fake)) == {("granian.apps.x", "granian.server.cycle")}
