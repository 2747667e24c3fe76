"""labkit: the helper package behind the Private AI workbook.

One module per concern, called through its namespace so every call site says which file to
open: ``lk.fl.fedavg``, ``lk.dp.train_dpsgd``, ``lk.he.PackingSpec``, ``lk.attacks.audit_model``,
``lk.experiments.memorisation_experiment``. The top level keeps only what every chapter needs:
seeding, the quick/full switch, data loaders, model builders and the figure style. A concern
that outgrew one file is a package (``lk.data.text``, ``lk.attacks.exposure``).

Layers (arrows point down; algorithms do not import each other):
    experiments                      end-to-end experiments the chapters run
    fl | dp | he | attacks           the algorithms
    aggregation | models | data      the aggregation interface (no TensorFlow), models, data
    config | _checks                 seeds and switches; the one set of argument checks
"""

import importlib
from importlib import metadata as _metadata

from labkit import config  # first: it quiets TensorFlow before anything imports it
from labkit._checks import ParameterError
from labkit.config import is_full, scale, set_seed

# Everything else loads on first use (PEP 562), so ``import labkit.aggregation`` or
# ``labkit.he`` never pays for TensorFlow, and ``lk.fl`` imports only what it needs.
_MODULES = {"data", "models", "aggregation", "fl", "dp", "he", "attacks", "experiments",
            "plots", "results", "guide"}  # fmt: skip
_NAMES = {
    "load_mnist": "data",
    "load_digits": "data",
    "load_breast_cancer": "data",
    "load_adult": "data",
    "load_dataset": "data",
    "build_model": "models",
    "mlp": "models",
    "count_params": "models",
    "use_style": "plots",
    "load_results": "results",
    "load_rows": "results",
}


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"labkit.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"labkit.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    # concerns
    "config",
    "data",
    "models",
    "aggregation",
    "fl",
    "dp",
    "he",
    "attacks",
    "experiments",
    "plots",
    "results",
    "guide",
    # seeding and the quick/full switch
    "set_seed",
    "is_full",
    "scale",
    # data and models
    "load_mnist",
    "load_digits",
    "load_breast_cancer",
    "load_adult",
    "load_dataset",
    "build_model",
    "mlp",
    "count_params",
    # style, results, errors
    "use_style",
    "load_results",
    "load_rows",
    "ParameterError",
]


def _version() -> str:
    # One version: pyproject.toml's, as installed (`uv sync` installs labkit editable). A source
    # tree on sys.path without an install reads the file itself.
    try:
        return _metadata.version("labkit")
    except _metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


__version__ = _version()
