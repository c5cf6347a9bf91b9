"""The shape of the package: imports point downward only (no cycle), modules stay readable.

The import graph is built from the AST of every module of ``gpu_histeq``: module-level and
function-level ``import`` / ``from ... import`` statements and ``importlib.import_module`` calls
with a literal name. Any cycle fails, with the modules on it.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gpu_histeq"
#: Python modules longer than this are to be split (the house style's "about 500 lines").
MAX_LINES = 520


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer, level, target, is_package):
    """The absolute module name of a relative import inside `importer`."""
    if level == 0:
        return target
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name, path, known):
    """Package modules `name` imports, wherever in the file (functions included)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = set()

    def add(candidate):
        # `from x import y`: y may be a module of the package, else x is the dependency
        while candidate and candidate not in known:
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate != name:
            found.add(candidate)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(name, node.level, node.module or "", is_package)
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            package = None
            for keyword in node.keywords:
                if keyword.arg == "package" and isinstance(keyword.value, ast.Constant):
                    package = keyword.value.value
            target = node.args[0].value
            if target.startswith(".") and package:
                level = len(target) - len(target.lstrip("."))
                target = resolve(package + ".x", level, target.lstrip("."), False)
            add(target)
    return found


def import_graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph):
    """One cycle of `graph` as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_the_graph_sees_imports_of_every_kind():
    """The parser finds module-level, function-level, relative and importlib imports."""
    graph = import_graph()
    assert "gpu_histeq._engine" in graph["gpu_histeq.equalize"]
    assert "gpu_histeq._interop.dask" in graph["gpu_histeq._interop"]  # inside a function
    assert "gpu_histeq._binning" in graph["gpu_histeq._cuda"]


def test_a_planted_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_point_downward_only():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_public_modules_never_import_the_adapters():
    """Dask and tensor adapters sit above the public API (wrapped in __init__ only)."""
    graph = import_graph()
    for public in ("equalize", "histogram", "lut", "adaptive", "matching", "color", "_chunked"):
        below = graph[f"gpu_histeq.{public}"]
        assert not any(m.startswith("gpu_histeq._interop") for m in below), (public, below)


def test_the_bottom_modules_import_nothing_above_them():
    graph = import_graph()
    assert graph["gpu_histeq._validate"] == set()
    assert graph["gpu_histeq.color"] == set()
    assert graph["gpu_histeq._backend"] == set()
    assert graph["gpu_histeq._planes"] <= {"gpu_histeq._backend"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_readable(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by what its parts do"


def test_the_drop_in_modules_sit_on_top():
    """gpu_histeq.exposure and gpu_histeq.transforms call the public functions; nothing below
    them imports them (the package's __init__ only exports gpu_histeq.exposure)."""
    graph = import_graph()
    on_top = ("gpu_histeq.exposure", "gpu_histeq.transforms")
    assert "gpu_histeq.equalize" in graph["gpu_histeq.exposure._histogram"]
    assert "gpu_histeq" in graph["gpu_histeq.transforms.functional"]
    for name, imported in graph.items():
        if name.startswith(on_top):
            continue
        users = {m for m in imported if m.startswith(on_top)}
        assert users <= ({"gpu_histeq.exposure"} if name == "gpu_histeq" else set()), (name, users)
