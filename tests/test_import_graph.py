"""The package's import graph, read statically with ``ast`` (docs/design.md, "Layers").

Every ``import anchordet...`` and ``from anchordet... import`` counts, at module level or inside a
function (a lazy import is still a dependency: both circles this test was written for, detectors
<-> interop and config.schema <-> config.presets, ran through function-level imports). Imports
under ``if TYPE_CHECKING:`` do not: they name types and never run.

The rules:
- no circle between modules (a strongly connected component of more than one module), not even
  through imports that only name types (``if TYPE_CHECKING:``);
- a block (``BLOCKS``) imports only blocks and the shared leaves ``errors`` and ``files``: no
  detector, engine, CLI, analysis tool or any other tool above it;
- the distributed helpers (``anchordet.distributed``) are at the bottom: they import no other
  module of the package, so detectors and ``devices`` use them without reaching up;
- detectors never import the training engine, and the inference path (``INFERENCE_PATH``:
  ``anchordet.load`` / the predictor, export, convert, benchmark, the weights-file reader) never
  reaches it, not even through other modules;
- no module of the package is longer than ``MAX_LINES``.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "anchordet"
BLOCKS = frozenset({"anchors", "coding", "matching", "sampling", "losses", "postprocess", "ops", "structures",
                    "backbones", "heads"})
SHARED_LEAVES = frozenset({"errors", "files"})
# what inference runs, that must never reach the training engine (anchordet/engine/)
INFERENCE_PATH = ("anchordet.predictor", "anchordet.weights_file", "anchordet.export", "anchordet.export.onnx",
                  "anchordet.export.torchscript", "anchordet.export.optimize", "anchordet.runtime.benchmark",
                  "anchordet.runtime.acceleration", "anchordet.runtime.precision", "anchordet.interop.torchvision",
                  "anchordet.interop.torchvision_models", "anchordet.video",
                  "anchordet.cli.predict", "anchordet.cli.export", "anchordet.cli.convert", "anchordet.cli.benchmark")
MAX_LINES = 450


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


def _imports(tree: ast.AST, package: str, type_only: bool = False) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in ``tree`` outside ``if TYPE_CHECKING:`` blocks (inside
    them too with ``type_only``): ``import a.b`` gives ("a.b", []), ``from a import b, c`` gives
    ("a", ["b", "c"]). ``package``: the module's own package, for relative imports."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_only:
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


def import_graph(root: Path = PACKAGE_ROOT, type_only: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports: ``from a import b`` imports the module a.b
    when there is one (``from anchordet.data import datasets``), else the module a.
    ``type_only``: count the imports under ``if TYPE_CHECKING:`` too."""
    modules = module_files(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for module, names in _imports(ast.parse(path.read_text(encoding="utf-8")), package, type_only):
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


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports directly or through others -> the module that imports it
    on one shortest path (for messages)."""
    seen, frontier = {start: ""}, [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph.get(module, ())):
                if target not in seen:
                    seen[target] = module
                    following.append(target)
        frontier = following
    del seen[start]
    return seen


def _path(parents: dict[str, str], start: str, end: str) -> str:
    chain = [end]
    while chain[-1] != start:
        chain.append(parents.get(chain[-1], start) or start)
    return " -> ".join(reversed(chain))


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports against the layer rules of the module docstring (beyond blocks and circles)."""
    found = []
    for source, targets in graph.items():
        if source == "anchordet.distributed":
            found += [f"{source} -> {t}" for t in sorted(targets) if _folder(t) not in SHARED_LEAVES]
        if _folder(source) in ("detectors", *BLOCKS):
            found += [f"{source} -> {t}" for t in sorted(targets) if _folder(t) == "engine"]
    for start in INFERENCE_PATH:
        if start in graph:
            parents = reachable(graph, start)
            found += [_path(parents, start, t) for t in sorted(parents) if _folder(t) == "engine"]
    return sorted(found)


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


def test_no_circle_even_through_type_only_imports():
    graph = import_graph(type_only=True)
    circles = cycles(graph)
    assert circles == [], _describe(circles, graph)


def test_layers_read_top_down():
    graph = import_graph()
    assert all(m in graph for m in INFERENCE_PATH)  # a moved module would pass silently
    assert "anchordet.distributed" in graph["anchordet.detectors.base"]  # the walk sees real imports
    assert layer_violations(graph) == []


def test_no_module_is_longer_than_the_limit():
    long = {name: n for name, path in module_files(PACKAGE_ROOT).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


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
    # the type-only import of heads.retina closes no circle here; one that does is caught:
    assert cycles(import_graph(root, type_only=True)) == cycles(graph)


def test_the_layer_rules_catch_the_old_arrows_up(tmp_path):
    """The tree of issue 26 in miniature: detectors took reduce_mean from engine/, devices.py
    imported engine.distributed, the predictor loaded weights through engine.checkpoint, and
    analysis.py <-> analysis_plots.py closed a circle through a type-only import."""
    root = _write_package(tmp_path, {
        "detectors/ssd.py": "from anchordet.engine.distributed import reduce_mean\n",
        "engine/distributed.py": "import torch\n",
        "engine/checkpoint.py": "from anchordet.errors import UserError\n",
        "predictor.py": "def load():\n    from anchordet.weights_file import read_weights\n",
        "weights_file.py": "from anchordet.engine.checkpoint import load_checkpoint\n",
        "distributed.py": "from anchordet.devices import resolve_device\n",
        "devices.py": "import torch\n",
        "errors.py": "",
        "evaluation/analysis.py": "def write():\n    from anchordet.evaluation.analysis_plots import plot\n",
        "evaluation/analysis_plots.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from anchordet.evaluation.analysis import Matrix\n"),
    })
    graph = import_graph(root)
    assert layer_violations(graph) == [
        "anchordet.detectors.ssd -> anchordet.engine.distributed",
        "anchordet.distributed -> anchordet.devices",
        "anchordet.predictor -> anchordet.weights_file -> anchordet.engine.checkpoint",
        "anchordet.weights_file -> anchordet.engine.checkpoint"]
    assert cycles(graph) == []
    assert cycles(import_graph(root, type_only=True)) == [["anchordet.evaluation.analysis",
                                                           "anchordet.evaluation.analysis_plots"]]
