"""The shape of the code, read from its import statements (``ast``, nothing is imported):

- no import circle inside ``discovery/``;
- ``discovery.cli`` is imported by no module of the package, and ``discovery.pipeline`` only by
  the layers above it (the package's lazy API, the CLI, the Dask engine that builds a pipeline
  on each worker);
- no script under ``pipelines/`` or ``research/`` imports another script (shared logic lives
  in the package, where it is tested), and none puts a script folder on ``sys.path`` to do so.

Every import statement counts, wherever it stands: at module level, inside a function (the
lazy imports that keep TensorFlow from loading until a model runs), under ``try`` or
``if TYPE_CHECKING``. A lazy import still ties the two modules together: neither can be read,
changed or tested without the other. What is not counted is the implicit import of a parent
package's ``__init__`` that importing a submodule triggers; the package ``__init__`` files'
own import statements are counted like any module's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_DIRS = ("pipelines", "research")

# module -> the only modules allowed to import it
RESTRICTED = {
    "discovery.cli": set(),
    "discovery.pipeline": {"discovery", "discovery.cli", "discovery.engines.dask"},
}


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported_names(path: Path, module: str) -> list[tuple[str, int]]:
    """(dotted name, line) of every import statement in the file, relative imports resolved;
    ``from a import b`` gives ``a.b`` (a submodule, or an attribute of ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def import_graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    """module -> {module of the same package it imports: first line}."""
    modules = package_modules(root, package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imported_names(path, name):
            while target and target not in modules:  # an attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    edges = [f"{a} (line {line}) -> {b}" for a in component for b, line in graph[a].items() if b in component]
    return "circle: " + "; ".join(edges)


def forbidden_imports(graph: dict[str, dict[str, int]], restricted: dict[str, set[str]]) -> list[str]:
    return [f"{a} (line {line}) imports {b}; only {sorted(restricted[b]) or 'nothing'} may"
            for a, edges in sorted(graph.items()) for b, line in edges.items()
            if b in restricted and a not in restricted[b]]


def script_imports(root: Path, dirs: tuple[str, ...] = SCRIPT_DIRS) -> list[str]:
    """Imports of one script by another under ``dirs``, by module name (a sibling on
    ``sys.path``) or through a ``pipelines``/``research`` package path, and ``sys.path``
    changes that point into a script folder."""
    scripts = [p for d in dirs if (root / d).is_dir() for p in sorted((root / d).rglob("*.py"))]
    stems = {p.stem for p in scripts}
    problems: list[tuple[str, int, str]] = []
    for path in scripts:
        rel = path.relative_to(root)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level:
                problems.append((str(rel), node.lineno, "relative import"))
            for name in names:
                top = name.split(".")[0]
                if top in stems or top in dirs:
                    problems.append((str(rel), node.lineno, f"imports the script {name}"))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("insert", "append")
                    and ast.unparse(node.func.value) == "sys.path"):
                text = ast.unparse(node.args[-1])
                if any(d in text for d in dirs) or ".parent)" in text and "parent.parent" not in text:
                    problems.append((str(rel), node.lineno, f"puts a script folder on sys.path: {text}"))
    return [f"{rel} (line {line}): {what}" for rel, line, what in sorted(problems)]


# -- the repository --------------------------------------------------------------------------


def test_no_import_circle_in_the_package():
    graph = import_graph(ROOT, "discovery")
    assert len(graph) > 50  # the walk found the package
    assert [describe(graph, c) for c in circles(graph)] == []


def test_cli_and_pipeline_are_imported_only_from_above():
    assert forbidden_imports(import_graph(ROOT, "discovery"), RESTRICTED) == []


def test_no_script_imports_another():
    assert script_imports(ROOT) == []


def test_pipelines_top_level_holds_folders_and_a_readme():
    top = sorted(p.name for p in (ROOT / "pipelines").iterdir() if not p.name.startswith("."))
    files = [n for n in top if (ROOT / "pipelines" / n).is_file()]
    assert files == ["README.md"], files
    for folder in ("resources", "train", "select", "bench", "ship"):
        assert (ROOT / "pipelines" / folder / "README.md").is_file(), folder


# -- the checks themselves, on small made-up packages ------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_a_function_level_circle_is_found(tmp_path):
    root = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import g\n",
        "pkg/b.py": "def g():\n    from pkg import c\n",
        "pkg/c.py": "def h():\n    from .a import x\n",  # relative import, inside a function
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "import pkg.a\nfrom .. import c\n",  # in no circle: nothing imports d
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.sub.d"] == {"pkg.a": 1, "pkg.c": 2}
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "pkg.b (line 2) -> pkg.c" in describe(graph, circles(graph)[0])
    (root / "pkg" / "c.py").write_text("def h():\n    return 1\n")
    assert circles(import_graph(root, "pkg")) == []


def test_an_import_of_the_pipeline_from_below_is_found(tmp_path):
    root = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/pipeline.py": "from pkg import errors\n",
        "pkg/errors.py": "def user_errors():\n    from pkg.pipeline import FilterError\n",
        "pkg/cli.py": "from pkg.pipeline import run\n",
    })
    graph = import_graph(root, "pkg")
    assert circles(graph) == [["pkg.errors", "pkg.pipeline"]]
    found = forbidden_imports(graph, {"pkg.pipeline": {"pkg.cli"}, "pkg.cli": set()})
    assert found == ["pkg.errors (line 2) imports pkg.pipeline; only ['pkg.cli'] may"]


def test_a_script_importing_a_sibling_is_found(tmp_path):
    root = write(tmp_path, {
        "pipelines/bench/bench_one.py": "import numpy as np\n",
        "pipelines/select/pick.py": ("import sys\nfrom pathlib import Path\n"
                                     "sys.path.insert(0, str(Path(__file__).resolve().parent))\n"
                                     "from bench_one import run\n"),
        "research/probe.py": "import pipelines.bench.bench_one\n",
        "research/fine.py": "from discovery.benchmarks import run\n",
    })
    assert script_imports(root) == [
        "pipelines/select/pick.py (line 3): puts a script folder on sys.path: "
        "str(Path(__file__).resolve().parent)",
        "pipelines/select/pick.py (line 4): imports the script bench_one",
        "research/probe.py (line 1): imports the script pipelines.bench.bench_one",
    ]


@pytest.mark.parametrize("text", ["from . import sibling\n", "from .sibling import x\n"])
def test_a_relative_import_in_a_script_is_found(tmp_path, text):
    root = write(tmp_path, {"pipelines/train/a.py": text, "pipelines/train/sibling.py": "x = 1\n"})
    assert script_imports(root) == ["pipelines/train/a.py (line 1): relative import"]
