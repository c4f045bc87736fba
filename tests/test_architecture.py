"""The house's rules, checked on the source: imports flow downward, no circles, small files.

Every module's imports are read with ``ast`` (function-level imports included, those under
``if TYPE_CHECKING:`` excluded) and resolved to dojang modules. Two rules:

- no cycle among dojang modules (a package's ``__init__`` counts as its own module;
  the implicit import of parent packages does not count);
- no module imports a module of a higher layer, lazily or not, unless ``ALLOWED_UP``
  names the pair with the reason.

The layers, from DESIGN.md (lowest first; modules of one layer may import each other).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "dojang"

LAYERS = [
    # ground floor: array module and devices, every knob and context variable, seeded
    # generators, plain validation and file helpers (backends read thread settings, the
    # settings name devices: one floor, kept free of cycles by the cycle test)
    ("version", "backend", "backends", "config", "settings", "random", "validation", "fileio",
     "registry"),
    ("shapes",),  # geometry: pure ints
    ("autograd",),  # Tensor, Function, backward
    ("kernels",),  # pure array math
    ("ops",),  # differentiable primitives
    ("functional",),  # tf.nn-style ops with argument checks
    ("activations", "initializers", "regularizers", "losses", "metrics", "optimizers"),
    ("layers",),
    # distribute: the fit loop's strategy hook (its base lives beside the fit loop)
    ("models", "callbacks", "data", "datasets", "distribute"),
    ("cli", "cli_show", "viz", "onnx", "interop", "recipes", "zoo", "demo", "image",
     "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

# (importer, imported) -> why a lazy upward import is right there.
ALLOWED_UP: dict[tuple[str, str], str] = {
    ("dojang.backends.numpy_backend", "dojang.kernels.alloc"):
        "the NumPy backend's allocation is the recycler, which still lives in kernels/ until "
        "the kernel reorganisation moves it under backends/",
    ("dojang.backends.numpy_backend", "dojang.kernels.threads"):
        "the NumPy backend's threads are the batch-splitting pool, which still lives in "
        "kernels/ until the kernel reorganisation moves it under backends/",
    ("dojang.callbacks.tensorboard", "dojang.viz.figures"):
        "TensorBoard's images are the viz figures' arrays (lazy, only with write_images)",
    ("dojang.callbacks.tensorboard", "dojang.viz.probe"):
        "TensorBoard's feature-map images read a layer's output as viz does (lazy)",
}

MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The dojang modules that ``name`` imports (resolved to the deepest existing module)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("dojang") and target != name:
                out.add(target)
    return out


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _rank(module: str):
    parts = module.split(".")
    return None if len(parts) < 2 else RANK.get(parts[1])


def test_every_top_level_module_has_a_layer():
    tops = {m.split(".")[1] for m in _modules() if m != "dojang"}
    assert sorted(tops - set(RANK)) == []


def test_no_upward_imports():
    bad = []
    for importer, targets in _graph().items():
        for target in sorted(targets):
            low, high = _rank(importer), _rank(target)
            if target == "dojang":  # the package facade sits above everything
                high = len(LAYERS)
            if importer == "dojang" or high is None or low is None:
                continue
            if high > low and (importer, target) not in ALLOWED_UP:
                bad.append(f"{importer} -> {target}")
    assert bad == []


def test_no_import_cycles():
    graph = _graph()
    # Tarjan's strongly connected components, iteratively.
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert cycles == []


def test_files_are_small_or_say_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "lines" not in doc.lower():  # the docstring says why the file is long
            long.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
    assert long == []
