"""Offline data and client partitions."""

import numpy as np
import pytest

import labkit as lk


@pytest.fixture(scope="module")
def mnist_raw():
    return lk.data.load_mnist_raw()


def test_mnist_is_the_standard_split(mnist_raw):
    (x_tr, y_tr), (x_te, y_te) = mnist_raw
    assert x_tr.shape == (60000, 28, 28) and x_tr.dtype == np.uint8
    assert x_te.shape == (10000, 28, 28) and x_te.dtype == np.uint8
    assert y_tr.shape == (60000,) and y_te.shape == (10000,)
    # The well-known class counts of MNIST (LeCun & Cortes): train and test.
    assert np.bincount(y_tr).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(y_te).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # The first labels of the original files, in order.
    assert y_tr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_te[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_mnist_pixels_are_exact_bytes(mnist_raw):
    (x_tr, _), _ = mnist_raw
    # Pixels span the full byte range and the float file maps back to integers exactly.
    assert x_tr.min() == 0 and x_tr.max() == 255
    ds = lk.load_mnist()
    np.testing.assert_array_equal(np.rint(ds.x_train[:500] * 255).astype(np.uint8), x_tr[:500])
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0


def test_mnist_cache_is_read_only(mnist_raw):
    (x_tr, _), _ = mnist_raw
    with pytest.raises(ValueError):
        x_tr[0, 0, 0] = 1


def test_mnist_first_image_bytes(mnist_raw):
    (x_tr, _), _ = mnist_raw
    # Byte sum of training image 0 (a "5") in the original IDX file.
    assert int(x_tr[0].sum(dtype=np.int64)) == 27525


def test_small_datasets():
    digits = lk.load_digits()
    assert digits.x_train.shape[1:] == (8, 8)
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    bc = lk.load_breast_cancer()
    assert bc.x_train.shape[1] == 30 and len(bc.x_train) + len(bc.x_test) == 569
    np.testing.assert_allclose(bc.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert lk.load_dataset("digits", seed=3).x_train.shape == digits.x_train.shape
    with pytest.raises(ValueError, match="name must be one of"):
        lk.load_dataset("cifar")


def test_split_is_deterministic_and_disjoint():
    a, b = lk.load_digits(seed=1), lk.load_digits(seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    c = lk.load_digits(seed=2)
    assert not np.array_equal(a.y_train, c.y_train)


def test_subsample():
    ds = lk.load_digits()
    small = lk.data.subsample(ds, 100, 50, seed=0)
    assert small.x_train.shape == (100, 8, 8) and small.x_test.shape == (50, 8, 8)
    with pytest.raises(ValueError, match=r"num_train must be an integer in \[1, "):
        lk.data.subsample(ds, num_train=10**6)


# --- partitions -------------------------------------------------------------------------

LABELS = np.repeat(np.arange(10), 120)  # 1,200 examples, 10 balanced classes


def _check_partition(parts, n):
    allidx = np.concatenate(parts)
    assert len(allidx) == n, "client sizes must add up to the data set"
    assert len(np.unique(allidx)) == n, "clients must be disjoint"


@pytest.mark.parametrize(
    "scheme,kwargs", [("iid", {}), ("shards", {}), ("dirichlet", {"alpha": 0.5})]
)
def test_partitions_cover_disjoint_and_deterministic(scheme, kwargs):
    p1 = lk.data.partition(LABELS, 20, scheme, seed=7, **kwargs)
    p2 = lk.data.partition(LABELS, 20, scheme, seed=7, **kwargs)
    p3 = lk.data.partition(LABELS, 20, scheme, seed=8, **kwargs)
    assert len(p1) == 20
    _check_partition(p1, len(LABELS))
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(p1, p3, strict=True))


def test_iid_sizes_are_balanced():
    sizes = [len(p) for p in lk.data.partition_iid(LABELS, 7)]
    assert max(sizes) - min(sizes) <= 1


def test_shards_give_each_client_at_most_two_labels():
    parts = lk.data.partition_shards(LABELS, 20, shards_per_client=2)
    counts = lk.data.label_counts(LABELS, parts, 10)
    assert counts.shape == (20, 10)
    assert (np.count_nonzero(counts, axis=1) <= 2).all()
    assert {len(p) for p in parts} == {60}
    assert counts.sum(axis=0).tolist() == [120] * 10


def test_mcmahan_shards_on_mnist(mnist_raw):
    (_, y_tr), _ = mnist_raw
    parts = lk.data.partition_shards(y_tr, 100)  # 200 shards of 300, 2 per client
    counts = lk.data.label_counts(y_tr, parts)
    assert {len(p) for p in parts} == {600}
    assert np.count_nonzero(counts, axis=1).max() <= 4  # a shard can straddle two labels
    assert np.median(np.count_nonzero(counts, axis=1)) <= 2


def test_dirichlet_alpha_controls_skew():
    def skew(alpha):
        counts = lk.data.label_counts(
            LABELS, lk.data.partition_dirichlet(LABELS, 10, alpha, seed=0), 10
        )
        share = counts / counts.sum(axis=1, keepdims=True)
        return share.max(axis=1).mean()  # share of each client's top label

    assert skew(0.05) > 0.7 > 0.3 > skew(1000.0)


def test_partition_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"num_clients must be an integer in \[1, 1200\]"):
        lk.data.partition_iid(LABELS, 5000)
    with pytest.raises(ValueError, match=r"num_clients must be an integer in \[1, "):
        lk.data.partition_iid(LABELS, 0)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        lk.data.partition_dirichlet(LABELS, 10, alpha=0.0)
    with pytest.raises(lk.ParameterError, match="shards_per_client must be .* divides"):
        lk.data.partition_shards(LABELS, 7)
    with pytest.raises(ValueError, match="scheme must be one of"):
        lk.data.partition(LABELS, 10, "pathological")
    with pytest.raises(lk.ParameterError, match="alpha must be large enough .* 3 draws failed"):
        lk.data.partition_dirichlet(LABELS, 100, alpha=0.001, min_size=12, max_tries=3)


def test_adult_ships_offline():
    adult = lk.load_adult()
    assert set(adult) == set(lk.data.ADULT_COLUMNS)
    assert len(adult["age"]) == 32561  # the UCI training file
    assert adult["age"].dtype == np.int64 and 17 <= adult["age"].min() <= adult["age"].max() <= 90
    assert set(np.unique(adult["income"])) == {"<=50K", ">50K"}


@pytest.mark.parametrize("scheme", ["iid", "shards", "dirichlet"])
def test_partitions_refuse_one_hot_and_nan_labels(scheme):
    kwargs = {"alpha": 0.5} if scheme == "dirichlet" else {}
    one_hot = np.eye(10)[LABELS]
    with pytest.raises(ValueError, match="1-D array of integer class labels"):
        lk.data.partition(one_hot, 10, scheme, **kwargs)
    with_nan = LABELS.astype(np.float64)
    with_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lk.data.partition(with_nan, 10, scheme, **kwargs)
    with pytest.raises(ValueError, match="fractional"):
        lk.data.partition(LABELS + 0.5, 10, scheme, **kwargs)
    # Integral floats and NumPy scalars are fine, and give exactly the integer result.
    parts = lk.data.partition(LABELS.astype(np.float32), np.int64(10), scheme, **kwargs)
    for a, b in zip(parts, lk.data.partition(LABELS, 10, scheme, **kwargs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_more_clients_than_examples_names_the_range():
    with pytest.raises(lk.ParameterError, match=r"num_clients must be an integer in \[1, 5\]"):
        lk.data.partition_iid(np.arange(5) % 2, 6)
