"""The import rules of docs/architecture.md, checked on the source (ast) and in fresh processes.

Static checks read only top-level imports (what runs when a module is imported); a function-local
import is listed separately and must be of an optional backend.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("moon_features", "ctr_models")

# Optional backends (extras) may be imported inside a function; so may the project modules that are
# nothing but a wrapper of one (they import the backend at their top).
OPTIONAL_BACKENDS = ("tensorflow", "tensorflow_recommenders", "tf_keras", "ctr_models.tf", "redis", "hiredis",
                     "transformers", "ray", "feast.infra.online_stores.redis", "moon_features.store.redis_connection",
                     "moon_features.store.cluster_transport", "moon_features.store.local_cluster",
                     "moon_features.store.history_script", "moon_features.store.redis_reader", "moon_features.training.tf_data",
                     "onnx", "onnxruntime", "ctr_models.onnx_export", "moon_features.serving.onnx_model")

# Function-local imports that are not of an optional backend and are not yet removed: each entry is a
# (module, imported module) pair. The list may only shrink (delete a line once its import is gone);
# see docs/architecture.md, "What is left".
KNOWN_LOCAL_IMPORTS_LEFT_PATH = ROOT / "tests" / "architecture_local_imports.txt"

# Files and functions over the size limits that belong to work in progress elsewhere; may only shrink.
KNOWN_LONG: set[tuple[str, str | None]] = set()
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def project_modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


MODULES = project_modules()


def imported_names(module: str, is_pkg: bool, node) -> list[str]:
    """Absolute module names an import statement reaches (`from a import b` is a.b if that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")[: len(module.split(".")) - (node.level - 1) - (0 if is_pkg else 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]


def project_module_of(name: str) -> str | None:
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def scan():
    """(top-level import graph among project modules, [(module, line, imported name)] of local imports)."""
    graph, local = defaultdict(set), []
    for module, (path, is_pkg) in MODULES.items():
        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    names = imported_names(module, is_pkg, child)
                    if in_function:
                        local.extend((module, child.lineno, n) for n in names)
                    else:
                        graph[module] |= {t for n in names if (t := project_module_of(n)) and t != module}
                elif is_pkg and node is tree and isinstance(child, ast.FunctionDef) and child.name == "__getattr__":
                    continue  # a package's lazy attributes (PEP 562): loading on first use is their job
                else:
                    visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
        tree = ast.parse(path.read_text())
        visit(tree, False)
    return graph, local


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            strong(v)
    return out


def fresh_process(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_no_import_circles():
    graph, _ = scan()
    assert cycles(graph) == []


def test_cycle_finder_finds_a_circle():
    graph = {"moon_features.spec": {"moon_features.cli"}, "moon_features.cli": {"moon_features.spec"}}
    assert cycles(graph) == [["moon_features.cli", "moon_features.spec"]]


def test_function_local_imports_only_for_optional_backends():
    _, local = scan()
    known = {tuple(line.split()) for line in KNOWN_LOCAL_IMPORTS_LEFT_PATH.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    offenders = {(m, n) for m, _, n in local
                 if not any(n == b or n.startswith(b + ".") for b in OPTIONAL_BACKENDS)}
    new = sorted(offenders - known)
    assert not new, f"function-local imports of non-optional modules (import them at the top): {new}"


def test_ctr_models_core_imports_nothing_from_moon_features_or_tf():
    graph, _ = scan()
    for module, targets in graph.items():
        if module.startswith("ctr_models") and not module.startswith("ctr_models.tf"):
            assert not {t for t in targets if t.startswith("moon_features") or t.startswith("ctr_models.tf")}, module


def test_serving_never_imports_training_lab_or_plots():
    graph, _ = scan()
    for module, targets in graph.items():
        if module.startswith("moon_features.serving"):
            bad = {t for t in targets if t.startswith(("moon_features.training", "moon_features.lab", "ctr_models.plots"))}
            assert not bad, f"{module} imports {bad}"
    out = fresh_process(
        "import sys\n"
        "import moon_features.serving.app, moon_features.serving.scorer, moon_features.serving.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('moon_features.training', 'moon_features.lab', "
        "'matplotlib', 'ctr_models.trainer', 'ctr_models.plots'))))")
    assert out.strip() == "[]"


def test_feast_repo_imports_without_torch():
    """What `feast apply` imports (feature_repo/features.py -> moon_features.store.definitions) works
    with torch absent. (Feast 0.67 itself imports torch when it is installed, in feast.torch_wrapper;
    so the check blocks torch instead of looking for it in sys.modules.)"""
    out = fresh_process(
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked by test_architecture')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import moon_features.store.definitions, moon_features.store.repo, moon_features.spec, ctr_models.inputs\n"
        "from moon_features.store.errors import RepoNotReadyError\n"
        "try:\n"
        "    runpy.run_path('feature_repo/features.py')\n"
        "except RepoNotReadyError:\n"
        "    pass  # no spec.json in this checkout: the module still imported\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None)")
    assert out.strip() == "False"


def test_size_limits_outside_bench():
    over = set()
    for pkg in PACKAGES + ("tests", "examples", "tools", "feature_repo"):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            src = path.read_text()
            if src.count("\n") > MAX_FILE_LINES:
                over.add((rel, None))
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                        over.add((rel, node.name))
    assert not over - KNOWN_LONG, f"over {MAX_FILE_LINES} lines per file / {MAX_FUNCTION_LINES} per function: {sorted(over - KNOWN_LONG)}"
    assert not KNOWN_LONG - over, f"fixed: remove from KNOWN_LONG: {sorted(KNOWN_LONG - over)}"


@pytest.mark.parametrize("module", ["moon_features.store.configs", "ctr_models.registry", "ctr_models.inputs",
                                    "moon_features.command"])
def test_light_modules_load_no_torch(module):
    out = fresh_process(f"import sys, {module}\nprint('torch' in sys.modules)")
    assert out.strip() == "False"
