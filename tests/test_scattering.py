"""ScatterNet features: shape, exact properties of the transform, per-example independence."""

import numpy as np
import pytest

import labkit as lk
from labkit.data import scattering as sc


@pytest.fixture(scope="module")
def digits():
    (x, _), _ = lk.data.load_mnist_raw()
    return x[:6].astype(np.float32) / 255.0


def test_channels_match_the_scattering_formula():
    # 1 + J L + L^2 J (J - 1) / 2: order 0, 1 and 2 (Bruna & Mallat 2013).
    assert sc.scattering_channels(2, 8) == 81
    assert sc.scattering_channels(1, 8) == 9
    assert sc.scattering_channels(3, 4) == 1 + 12 + 16 * 3


def test_shape_dtype_and_determinism(digits):
    a = sc.scattering_features(digits)
    b = sc.scattering_features(digits)
    assert a.shape == (6, 7, 7, 81) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert sc.scattering_features(digits[:0]).shape == (0, 7, 7, 81)


def test_constant_image_keeps_only_the_low_pass():
    # The low-pass filter has unit gain at frequency 0 and the wavelets none: a constant image
    # gives its value in channel 0 and (numerically) zero everywhere else.
    raw = sc.scattering_features(np.full((1, 28, 28), 0.7, np.float32), num_groups=None)
    np.testing.assert_allclose(raw[..., 0], 0.7, rtol=1e-4)
    assert np.abs(raw[..., 1:]).max() < 1e-5


def test_raw_transform_is_positively_homogeneous(digits):
    # Convolutions are linear and the modulus is homogeneous: S(a x) = a S(x) for a > 0.
    raw = sc.scattering_features(digits[:2], num_groups=None)
    np.testing.assert_allclose(
        sc.scattering_features(3.0 * digits[:2], num_groups=None), 3.0 * raw, rtol=1e-4, atol=1e-6
    )


def test_each_row_depends_on_its_own_image_only(digits, monkeypatch):
    monkeypatch.setattr(sc, "_CHUNK", 4)  # rows split across kymatio calls too
    together = sc.scattering_features(digits)
    other = digits.copy()
    other[[0, 1, 2, 4, 5]] = np.random.default_rng(0).random((5, 28, 28), np.float32)
    changed = sc.scattering_features(other)
    np.testing.assert_allclose(changed[3], together[3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sc.scattering_features(digits[3:4])[0], together[3], atol=1e-6)
    assert not np.allclose(changed[0], together[0])


def test_group_norm_against_a_loop():
    x = np.random.default_rng(1).normal(2.0, 3.0, (3, 2, 2, 6)).astype(np.float32)
    out = sc.group_norm(x, num_groups=3)
    for i in range(3):
        for g in range(3):
            block = x[i, :, :, 2 * g : 2 * g + 2].astype(np.float64)
            ref = (block - block.mean()) / np.sqrt(block.var() + 1e-5)
            np.testing.assert_allclose(out[i, :, :, 2 * g : 2 * g + 2], ref, rtol=1e-5)
    # Per example: rescaling and shifting one image does not change its normalised features.
    y = x.copy()
    y[1] = 5.0 * y[1] - 4.0
    np.testing.assert_allclose(sc.group_norm(y, 3), out, atol=1e-4)


def test_default_features_are_group_normalised(digits):
    # PyTorch's GroupNorm(27, 81, affine=False), as Tramer & Boneh: per group mean 0 and
    # variance v / (v + 1e-5) for raw variance v (the epsilon matters for faint groups).
    feats = sc.scattering_features(digits[:2], num_groups=27).reshape(2, 7, 7, 27, 3)
    raw = sc.scattering_features(digits[:2], num_groups=None).reshape(2, 7, 7, 27, 3)
    v = raw.astype(np.float64).var(axis=(1, 2, 4))
    np.testing.assert_allclose(feats.mean(axis=(1, 2, 4)), 0.0, atol=1e-4)
    np.testing.assert_allclose(feats.var(axis=(1, 2, 4)), v / (v + 1e-5), rtol=1e-3, atol=1e-5)


def test_cache_round_trip(digits, tmp_path, monkeypatch):
    first = sc.scattering_features(digits[:2], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("scattering_*.npy"))) == 1

    def boom(*args):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(sc, "_scatter", boom)
    np.testing.assert_array_equal(sc.scattering_features(digits[:2], cache_dir=tmp_path), first)
    with pytest.raises(AssertionError, match="recomputed"):  # other images: another key
        sc.scattering_features(digits[2:4], cache_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"images": np.zeros((2, 28, 28, 1))}, "images must be grey-scale images"),
        ({"images": np.full((1, 28, 28), np.nan)}, "images must be finite"),
        ({"J": 3}, r"J must be 2\*\*J dividing the image sides 28x28"),
        ({"J": 0}, r"J must be an integer in \[1, 6\]"),
        ({"num_groups": 4}, "num_groups must be a divisor of the 81 channels"),
        ({"num_groups": 0}, r"num_groups must be an integer in \[1, 81\]"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    args = {"images": np.zeros((1, 28, 28), np.float32)} | kwargs
    with pytest.raises(lk.ParameterError, match=match):
        sc.scattering_features(**args)


def test_linear_dp_sgd_on_features_learns():
    # The benchmark's recipe in small: ghost-clipped DP-SGD on a logistic model over the features.
    (x, y), (xt, yt) = lk.data.load_mnist_raw()
    train = sc.scattering_features(x[:600].astype(np.float32) / 255.0)
    test = sc.scattering_features(xt[:200].astype(np.float32) / 255.0)
    lk.set_seed(0)
    model = lk.models.logistic(train.shape[1:], 10)
    hist = lk.dp.train_dpsgd(
        model, train, y[:600], l2_norm_clip=0.1, noise_multiplier=0.5, batch_size=60,
        epochs=3, learning_rate=4.0, momentum=0.9, validation_data=(test, yt[:200]), seed=0,
    )  # fmt: skip
    assert hist.test_accuracy[-1] > 0.8  # chance is 0.1
