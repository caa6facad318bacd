"""The package's import graph, read statically with ``ast`` (docs/design.md, "Layers").

Every ``import anchordet...`` and ``from anchordet... import`` counts, at module level or inside a
function (a lazy import is still a dependency: both circles this test was written for, detectors
<-> interop and config.schema <-> config.presets, ran through function-level imports). Imports
under ``if TYPE_CHECKING:`` do not: they name types and never run.

Two rules:
- no circle between modules (a strongly connected component of more than one module);
- a block (``BLOCKS``) imports only blocks and the shared leaves ``errors`` and ``files``: no
  detector, engine, CLI, analysis tool or any other tool above it.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "anchordet"
BLOCKS = frozenset({"anchors", "coding", "matching", "sampling", "losses", "postprocess", "ops", "structures",
                    "backbones", "heads"})
SHARED_LEAVES = frozenset({"errors", "files"})


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the package at ``root`` (``__init__`` names the package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, package: str) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in ``tree`` outside ``if TYPE_CHECKING:`` blocks:
    ``import a.b`` gives ("a.b", []), ``from a import b, c`` gives ("a", ["b", "c"]).
    ``package``: the module's own package, for relative imports."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.append((base, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports: ``from a import b`` imports the module a.b
    when there is one (``from anchordet.data import datasets``), else the module a."""
    modules = module_files(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for module, names in _imports(ast.parse(path.read_text(encoding="utf-8")), package):
            for imported in [f"{module}.{n}" if f"{module}.{n}" in modules else module for n in names] or [module]:
                if imported in modules:
                    targets.add(imported)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def block_violations(graph: dict[str, set[str]]) -> list[str]:
    """``block module -> imported module`` for every import of a block out of the blocks."""
    return sorted(f"{source} -> {target}" for source, targets in graph.items() if _folder(source) in BLOCKS
                  for target in targets if _folder(target) not in BLOCKS | SHARED_LEAVES)


def _describe(circles: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = []
    for circle in circles:
        edges = [f"{a} -> {b}" for a in circle for b in sorted(graph[a]) if b in circle]
        lines.append(f"circle {circle}: " + "; ".join(edges))
    return "\n".join(lines)


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert "anchordet.losses.focal" in graph["anchordet.detectors.retinanet"]  # the walk sees real imports
    circles = cycles(graph)
    assert circles == [], _describe(circles, graph)


def test_blocks_import_only_blocks():
    graph = import_graph()
    assert {_folder(m) for m in graph} >= BLOCKS  # every block folder exists (a renamed one would pass silently)
    assert block_violations(graph) == []


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "anchordet" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in (root / "anchordet").rglob("*.py")} | {root / "anchordet"}:
        (folder / "__init__.py").touch()
    return root / "anchordet"


def test_the_checks_catch_the_two_old_circles_and_a_block_importing_upwards(tmp_path):
    """The tree of commit 9611ad8 in miniature: the factories imported the weight-file helpers
    from interop, which imported the detectors to convert them; ``load_config`` imported PRESETS,
    written with schema's dataclasses; both through imports inside functions."""
    root = _write_package(tmp_path, {
        "detectors/retinanet.py": "def factory():\n    from anchordet.interop.torchvision import resolve_backbone_weights\n",
        "interop/torchvision.py": "def arch(model):\n    from anchordet.detectors.retinanet import RetinaNet\n",
        "config/schema.py": "def load_config(name):\n    from anchordet.config.presets import PRESETS\n",
        "config/presets.py": "from anchordet.config.schema import ExperimentConfig\n",
        "losses/focal.py": "from anchordet.engine.distributed import reduce_mean\nfrom anchordet.errors import UserError\n",
        "engine/distributed.py": "import torch\n",
        "errors.py": "",
        "heads/retina.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anchordet.detectors.retinanet import RetinaNet\n",
    })
    graph = import_graph(root)
    assert cycles(graph) == [["anchordet.config.presets", "anchordet.config.schema"],
                             ["anchordet.detectors.retinanet", "anchordet.interop.torchvision"]]
    assert block_violations(graph) == ["anchordet.losses.focal -> anchordet.engine.distributed"]
