"""The import layers of docs/architecture.md, read from the source with ast (nothing is imported).

Layers, bottom up: model/ (physics, networks, reconstructors) < challenge/ (the run-time challenge code, in
the image with model/) < predict.py (the image's CLI, which the tools above may drive) < simulation/ < tools/
(input trees, fault tree) < training/ < benchmarks/. A module
imports only from its own layer or the ones below, and no two modules import each other, even through others
or from inside a function.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("model", "challenge", "predict", "simulation", "tools", "training", "benchmarks")
PACKAGES = tuple(name for name in LAYERS if name != "predict")
# what the image ships besides model/ and challenge/ may not be imported by them (Dockerfile)
RUNTIME = ("model", "challenge")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [REPO / "predict.py"] + [path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))]
    return {module_name(path): path for path in files if path.is_file()}


MODULES = project_modules()


def imports_in(source: str, own: str = "") -> set[str]:
    """Project modules that ``source`` imports anywhere in its body (functions included, TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from challenge import rules` imports the module challenge.rules
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                     for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in MODULES}
    return found - {own}


GRAPH = {name: imports_in(path.read_text(), name) for name, path in MODULES.items()}


def layer(module: str) -> int:
    top = module.split(".")[0]
    return LAYERS.index(top)


def test_the_layers_hold_every_package():
    assert {"model.interface", "model.reconstruction", "challenge.runner", "training.trainer",
            "benchmarks.evaluate"} <= set(MODULES)


def test_no_module_imports_a_layer_above_its_own():
    upward = {module: sorted(name for name in imported if layer(name) > layer(module))
              for module, imported in GRAPH.items()}
    upward = {module: names for module, names in upward.items() if names}
    assert not upward, f"imports above their layer ({' < '.join(LAYERS)}): {upward}"


def test_runtime_packages_import_only_runtime_code():
    for module, imported in GRAPH.items():
        if module.split(".")[0] in RUNTIME:
            outside = sorted(name for name in imported if name.split(".")[0] not in RUNTIME)
            assert not outside, f"{module} (in the image) imports {outside}, which the image does not hold"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan): the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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
            visit(node)
    return found


# torch-free leaves and the reconstructor interface: the challenge code knows nothing of the networks
CHALLENGE_SEES_OF_MODEL = {"model.reconstruction", "model.matlab", "model.provenance"}


def test_the_challenge_code_sees_model_only_through_its_interface():
    seen = {module: sorted(name for name in imported if name.startswith("model.")
                           and name not in CHALLENGE_SEES_OF_MODEL)
            for module, imported in GRAPH.items() if module.startswith("challenge.")}
    seen = {module: names for module, names in seen.items() if names}
    assert not seen, f"challenge/ may import from model/ only {sorted(CHALLENGE_SEES_OF_MODEL)}: {seen}"


def test_no_import_cycles():
    assert not cycles(GRAPH), f"import cycles: {cycles(GRAPH)}"


def test_the_checker_sees_function_level_imports_upward_imports_and_cycles():
    """The rules above would also pass on a parser that finds nothing: these must be caught."""
    source = "from challenge import runner\n\ndef late():\n    from benchmarks.evaluate import main\n"
    found = imports_in(source, "model.interface")
    assert found == {"challenge.runner", "benchmarks.evaluate"}
    assert all(layer(name) > layer("model.interface") for name in found)
    graph = {"model.a": {"model.b"}, "model.b": {"model.c"}, "model.c": {"model.a"}, "model.d": {"model.a"}}
    assert cycles(graph) == [["model.a", "model.b", "model.c"]]
