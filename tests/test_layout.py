"""The package's shape: a small top level, TensorFlow-free aggregation, layers that point down."""

import ast
import subprocess
import sys
from pathlib import Path

import labkit as lk

LABKIT = Path(lk.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _package_imports(package: str) -> set[str]:
    root = LABKIT / package
    files = list(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    return set().union(*(_imports(f) for f in files))


def test_top_level_is_small_and_every_name_resolves():
    assert len(lk.__all__) <= 40
    for name in lk.__all__:
        assert getattr(lk, name) is not None


def test_aggregation_and_he_do_not_import_tensorflow():
    code = "import sys, labkit.aggregation, labkit.he; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_algorithms_do_not_import_each_other():
    def touches(imports: set[str], other: str) -> bool:
        return any(m == f"labkit.{other}" or m.startswith(f"labkit.{other}.") for m in imports)

    assert not touches(_package_imports("he"), "fl")
    assert not touches(_package_imports("dp"), "attacks")
    assert not touches(_package_imports("dp"), "fl")
    for algo in ("fl", "dp", "he", "attacks"):
        assert not touches(_package_imports(algo), "experiments")


def test_no_module_is_longer_than_500_lines():
    long = {
        str(p.relative_to(LABKIT)): n
        for p in LABKIT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, long
