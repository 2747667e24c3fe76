"""Both Conv2D paths of DP-SGD's clipped sum (explicit per-example and ghost norm) are exact."""

import numpy as np
import pytest
import tensorflow as tf

import labkit as lk


@pytest.mark.parametrize("explicit_bytes", [0, 64 << 20])  # 0 forces the ghost identity
def test_conv_paths_match_the_per_example_loop(explicit_bytes):
    ds = lk.data.load_mnist()
    x, y = ds.x_train[:6], ds.y_train[:6]
    tf.keras.utils.set_random_seed(3)
    model = lk.dp.dp_cnn((28, 28), 10)
    dp = lk.dp.DPSGD(model, l2_norm_clip=0.5, noise_multiplier=0.0)
    dp.EXPLICIT_BYTES = explicit_bytes  # read when the step is traced
    grads, _ = dp.clipped_gradient_sum(x, y)
    ref = lk.dp.reference_clipped_sum(model, x, y, 0.5)
    for g, r in zip(grads, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * np.abs(r).max())
