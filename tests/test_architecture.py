"""The import rules that make the folders the architecture (docs/architecture.md):

- daemon/core imports only the standard library, `holidays` and daemon/core;
- daemon/queries never imports daemon/flows or daemon/cli;
- no import cycle anywhere in daemon/, counting imports inside functions (only those under
  `if TYPE_CHECKING:` are left out: they never run).

Read from the source with `ast`, so an import hidden in a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

DAEMON = Path(__file__).resolve().parent.parent / "daemon"
CORE_MAY_IMPORT = {"holidays"}
# Known breaks in files this step could not edit; the lead removes each line with the fix.
KNOWN_CYCLES: set[frozenset[str]] = set()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module, as written (absolute)
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in the module, wherever it stands, except under `if TYPE_CHECKING:`."""
    source = module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(source, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module.
            found.extend(Import(source, f"{base}.{alias.name}", node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def modules(root: Path = DAEMON) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def graph(root: Path = DAEMON) -> tuple[dict[str, set[str]], list[Import]]:
    """Edges between the project's own modules, and every import with what it resolved to."""
    known = modules(root)
    top = root.name
    edges: dict[str, set[str]] = {name: set() for name in known}
    resolved: list[Import] = []
    for name, path in known.items():
        for imp in imports_of(path, root):
            if imp.target.split(".")[0] != top:
                resolved.append(imp)
                continue
            target = imp.target
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
                resolved.append(Import(name, target, imp.line))
    return edges, resolved


def in_room(module: str, room: str, top: str = "daemon") -> bool:
    return module == f"{top}.{room}" or module.startswith(f"{top}.{room}.")


def core_breaks(root: Path = DAEMON) -> list[str]:
    _, resolved = graph(root)
    top = root.name
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for imp in resolved:
        if not in_room(imp.source, "core", top):
            continue
        first = imp.target.split(".")[0]
        if first == "__future__" or first in stdlib or first in CORE_MAY_IMPORT or in_room(imp.target, "core", top):
            continue
        bad.append(f"{imp.source}:{imp.line} imports {imp.target}")
    return sorted(set(bad))


# docs/architecture.md, "may import": each folder of daemon/ and the folders it may import.
MAY_IMPORT = {
    "core": {"core"},
    "adapters": {"core", "adapters"},
    "queries": {"core", "adapters", "queries"},
    "flows": {"core", "adapters", "queries", "flows", "runtime.logs", "runtime.faults"},
    "runtime": {"core", "adapters", "flows", "runtime"},
    "cli": {"core", "adapters", "queries", "flows", "runtime", "cli", "demo"},
    "demo": {"core", "adapters", "queries", "flows", "runtime", "cli", "demo"},
}


def layout_breaks(root: Path = DAEMON) -> list[str]:
    """Imports between folders that the table of docs/architecture.md does not allow."""
    _, resolved = graph(root)
    top = root.name
    bad = set()
    for imp in resolved:
        source, target = imp.source.split("."), imp.target.split(".")
        if imp.target.split(".")[0] != top or len(source) < 3 or len(target) < 2 or source[1] not in MAY_IMPORT:
            continue  # outside the project, or the package's own __init__/__main__
        allowed = MAY_IMPORT[source[1]]
        if not any(imp.target == f"{top}.{room}" or imp.target.startswith(f"{top}.{room}.") for room in allowed):
            bad.add(f"{imp.source}:{imp.line} imports {imp.target}")
    return sorted(bad)


def queries_breaks(root: Path = DAEMON) -> list[str]:
    _, resolved = graph(root)
    top = root.name
    return sorted({f"{imp.source}:{imp.line} imports {imp.target}" for imp in resolved
                   if in_room(imp.source, "queries", top)
                   and (in_room(imp.target, "flows", top) or in_room(imp.target, "cli", top))})


def cycles(root: Path = DAEMON) -> list[frozenset[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    edges, _ = graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0

    def strongconnect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    return found


# ---- the rules, on daemon/ -------------------------------------------------------------------------


def test_core_imports_only_the_standard_library_holidays_and_core() -> None:
    assert core_breaks() == []


def test_queries_never_import_flows_or_cli() -> None:
    assert queries_breaks() == []


def test_each_folder_imports_only_what_docs_architecture_allows() -> None:
    assert layout_breaks() == []


def test_no_import_cycles_in_daemon() -> None:
    found = set(cycles())
    assert found - KNOWN_CYCLES == set(), [sorted(group) for group in found - KNOWN_CYCLES]
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_the_scan_sees_the_whole_daemon() -> None:
    edges, _ = graph()
    assert len(edges) > 60
    assert "daemon.core.rules" in edges["daemon.core.events"]
    assert "daemon.flows.sending" in edges["daemon.flows.operator_actions"], "an import inside a function counts"


# ---- the rules fail when broken (a synthetic tree) -------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "daemon"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_a_core_module_importing_io_or_the_shell_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "core/good.py": "import re\nfrom datetime import datetime\nimport holidays\nfrom daemon.core import other\n",
        "core/other.py": "from .good import re\n",
        "core/bad.py": "import yaml\n\ndef f():\n    from daemon.adapters import store\n",
        "adapters/store.py": "",
    })
    assert core_breaks(root) == ["daemon.core.bad:1 imports yaml", "daemon.core.bad:4 imports daemon.adapters.store"]


def test_queries_importing_flows_or_cli_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "queries/status.py": "from daemon.flows import sending\nfrom daemon.core import rules\n",
        "queries/listing.py": "def f():\n    from ..cli.render import x\n",
        "flows/sending.py": "", "cli/render.py": "", "core/rules.py": "",
    })
    assert queries_breaks(root) == ["daemon.queries.listing:2 imports daemon.cli.render",
                                    "daemon.queries.status:1 imports daemon.flows.sending"]


def test_a_cycle_hidden_in_a_function_is_reported_and_type_checking_is_not(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "flows/a.py": "from daemon.flows import b\n",
        "flows/b.py": "def later():\n    from daemon.flows.a import x\n",
        "flows/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from daemon.flows.d import y\n",
        "flows/d.py": "import daemon.flows.c\n",
    })
    assert cycles(root) == [frozenset({"daemon.flows.a", "daemon.flows.b"})]


def test_an_adapter_importing_a_flow_or_a_flow_the_service_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "adapters/store.py": "from daemon.flows import step\n",
        "flows/step.py": "from daemon.runtime.logs import get_logger\nfrom daemon.runtime import service\n",
        "runtime/logs.py": "", "runtime/service.py": "",
    })
    assert layout_breaks(root) == ["daemon.adapters.store:1 imports daemon.flows.step",
                                   "daemon.flows.step:2 imports daemon.runtime.service"]
