"""The package's shape: ``__all__`` is the truth, one version, layers that point down.

DESIGN.md's layers, lowest first; a module may import only lower layers, and the algorithms
(fl, dp, he, attacks) do not import each other. Nothing in labkit imports a notebook, a
benchmark, a test or the Flower app.
"""

import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import labkit as lk

LABKIT = Path(lk.__file__).parent
ROOT = LABKIT.parent

LAYERS = [
    {"_checks", "_lazy", "_progress"},  # the one set of checks, lazy submodules, progress bars
    {"config", "_tables"},  # seeds, switches, progress; tables for display
    {"aggregation", "data"},  # the aggregation interface (no TensorFlow), data
    {"models"},
    {"fl", "dp", "he", "attacks"},  # the algorithms: never each other
    {"experiments", "plots", "results", "guide"},  # what the chapters call on top
    {"jupyter_trust"},  # the Jupyter server extension: trusts the chapters, calls no layer
]
# Sorted: pytest-xdist workers must collect the parametrized pairs in the same order.
RANK = {concern: i for i, layer in enumerate(LAYERS) for concern in sorted(layer)}
ALGORITHMS = LAYERS[4]
OUTSIDE = ("notebooks", "benchmarks", "tests", "flower_app", "labkit_flower", "tools")


def _modules() -> list[str]:
    out = []
    for path in sorted(LABKIT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _concern(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _imports(module: str) -> set[str]:
    """Return every module ``module`` imports (top level or inside functions)."""
    rel = module.replace(".", "/")
    path = ROOT / f"{rel}.py" if (ROOT / f"{rel}.py").exists() else ROOT / rel / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            if node.module == "labkit":  # from labkit import data
                out.update(f"labkit.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _labkit_concerns(imports: set[str]) -> set[str]:
    return {m.split(".")[1] for m in imports if m.startswith("labkit.")}


# --- layers -----------------------------------------------------------------------------------
def test_every_concern_has_a_layer():
    concerns = {_concern(m) for m in _modules()} - {"__init__"}
    assert concerns <= set(RANK), concerns - set(RANK)


@pytest.mark.parametrize("module", [m for m in _modules() if m != "labkit"])
def test_imports_point_down(module):
    mine = _concern(module)
    for other in _labkit_concerns(_imports(module)) - {mine}:
        assert RANK[other] < RANK[mine], f"{module} imports labkit.{other} (layer not below)"
        if mine in ALGORITHMS:
            assert other not in ALGORITHMS, f"{module}: algorithms do not import each other"


@pytest.mark.parametrize("module", _modules())
def test_nothing_imports_notebooks_benchmarks_tests_or_the_flower_app(module):
    bad = {m for m in _imports(module) if m.split(".")[0] in OUTSIDE}
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize(("lower", "upper"), [
    (a, b) for a in RANK for b in RANK if RANK[a] < RANK[b] or (a != b and {a, b} <= ALGORITHMS)
])  # fmt: skip
def test_every_forbidden_pair(lower, upper):
    # the pairs DESIGN.md forbids, one by one: lower -> upper, and algorithm -> algorithm
    modules = [m for m in _modules() if _concern(m) == lower]
    for module in modules:
        assert upper not in _labkit_concerns(_imports(module)), f"{module} -> labkit.{upper}"


def test_aggregation_and_he_do_not_import_tensorflow():
    code = "import sys, labkit.aggregation, labkit.he; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_module_is_longer_than_500_lines():
    long = {
        str(p.relative_to(LABKIT)): n
        for p in LABKIT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, long


# --- names ------------------------------------------------------------------------------------
def _public_definitions(module: str) -> set[str]:
    """Return the functions, classes and UPPER_CASE constants ``module`` defines itself."""
    rel = module.replace(".", "/")
    path = ROOT / f"{rel}.py" if (ROOT / f"{rel}.py").exists() else ROOT / rel / "__init__.py"
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper())
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("module", _modules())
def test_all_lists_every_public_definition_and_only_real_names(module):
    mod = importlib.import_module(module)
    assert isinstance(mod.__all__, list) and len(mod.__all__) == len(set(mod.__all__)), module
    for name in mod.__all__:
        assert getattr(mod, name, None) is not None, f"{module}.__all__ lists missing {name!r}"
    missing = _public_definitions(module) - set(mod.__all__)
    assert not missing, f"{module} defines {sorted(missing)} but leaves them out of __all__"


@pytest.mark.parametrize("package", ["labkit.he", "labkit.dp", "labkit.fl"])
def test_packages_export_their_submodules_names(package):
    pkg = importlib.import_module(package)
    for module in _modules():
        if module.startswith(package + ".") and not module.split(".")[-1].startswith("_"):
            sub = importlib.import_module(module)
            if module in ("labkit.he.inference", "labkit.dp.recurrent"):
                continue  # loaded on demand (chapter 08), reached as package.submodule
            assert set(sub.__all__) <= set(pkg.__all__), (
                module,
                set(sub.__all__) - set(pkg.__all__),
            )


def test_top_level_all_is_exactly_what_it_offers():
    from labkit import _MODULES, _NAMES

    eager = {"config", "set_seed", "is_full", "scale", "ParameterError"}
    assert set(lk.__all__) == _MODULES | set(_NAMES) | eager
    assert lk.__dir__() == sorted(lk.__all__)
    assert len(lk.__all__) <= 40
    for name in ("logistic", "cnn", "Dataset"):  # unused re-exports, dropped
        assert name not in lk.__all__ and not hasattr(lk, name)
    assert lk.models.logistic and lk.models.cnn and lk.data.Dataset  # still where they live


def test_one_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert lk.__version__ == pyproject["project"]["version"]
    assert lk.config.versions()["labkit"] == lk.__version__
