"""DP-SGD: the fast clipped sum equals an explicit per-example loop; noise has the right scale."""

import numpy as np
import pytest
import tensorflow as tf

import labkit as lk


def per_example_gradients(model, x, y):
    """Each example's gradient from its own backward pass (float64), and its norm."""
    per, norms = [], []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            logits = model(x[i : i + 1], training=True)
            loss = tf.reduce_sum(
                tf.keras.losses.sparse_categorical_crossentropy(y[i : i + 1], logits, True)
            )
        grads = [
            g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_variables)
        ]
        per.append(grads)
        norms.append(np.sqrt(sum(np.sum(g**2) for g in grads)))
    return per, np.array(norms)


def clipped_sum(per, norms, clip):
    """Sum the per-example gradients, each scaled to L2 norm at most ``clip``."""
    return [
        sum(grads[k] * min(1.0, clip / n) for grads, n in zip(per, norms, strict=True))
        for k in range(len(per[0]))
    ]


def loop_reference(model, x, y, clip):
    """Clip each example's gradient in its own backward pass and sum (float64)."""
    per, norms = per_example_gradients(model, x, y)
    return clipped_sum(per, norms, clip), norms


@pytest.fixture(scope="module")
def batch():
    lk.set_seed(0)
    ds = lk.load_mnist()
    return ds.x_train[:12], ds.y_train[:12]


MODELS = {
    "mlp": lambda: lk.mlp((28, 28), 10, hidden=(32,)),
    "dp_cnn": lambda: lk.dp.dp_cnn((28, 28), 10),
    "cnn_small": lambda: lk.build_model("cnn", (28, 28), 10, small=True),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ghost_clipped_sum_equals_per_example_loop(batch, name):
    x, y = batch
    tf.keras.utils.set_random_seed(1)
    model = MODELS[name]()
    per, ref_norms = per_example_gradients(model, x, y)
    clip = float(np.median(ref_norms))  # half the examples are clipped, half are not
    ref = clipped_sum(per, ref_norms, clip)
    dp = lk.dp.DPSGD(model, l2_norm_clip=clip, noise_multiplier=0.0)
    grads, norms = dp.clipped_gradient_sum(x, y)
    np.testing.assert_allclose(norms, ref_norms, rtol=1e-5)
    for g, r in zip(grads, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * np.abs(r).max())


def test_vectorized_method_and_mask(batch):
    x, y = batch
    tf.keras.utils.set_random_seed(2)
    model = MODELS["dp_cnn"]()
    ref, _ = loop_reference(model, x[:7], y[:7], 0.5)
    for method in ("ghost", "vectorized"):
        dp = lk.dp.DPSGD(model, l2_norm_clip=0.5, noise_multiplier=0.0, method=method)
        mask = np.r_[np.ones(7), np.zeros(5)]  # padded examples must contribute nothing
        grads, _ = dp.clipped_gradient_sum(x, y, mask)
        for g, r in zip(grads, ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * np.abs(r).max())


def test_step_update_is_exact_without_noise_and_chunking_is_exact(batch):
    x, y = batch
    tf.keras.utils.set_random_seed(3)
    model = MODELS["mlp"]()
    before = [v.numpy().copy() for v in model.trainable_variables]
    ref, _ = loop_reference(model, x, y, 0.7)
    dp = lk.dp.DPSGD(model, l2_norm_clip=0.7, noise_multiplier=0.0, learning_rate=0.5)
    dp.step(x, y, denominator=10.0, capacity=5)  # three chunks of at most 5 examples
    for b, v, r in zip(before, model.trainable_variables, ref, strict=True):
        np.testing.assert_allclose(v.numpy(), b - 0.5 * r / 10.0, rtol=1e-4, atol=1e-6)


def test_noise_has_standard_deviation_noise_multiplier_times_clip(batch):
    x, y = batch
    tf.keras.utils.set_random_seed(4)
    model = MODELS["mlp"]()
    before = [v.numpy().copy() for v in model.trainable_variables]
    ref, _ = loop_reference(model, x, y, 0.3)
    dp = lk.dp.DPSGD(model, l2_norm_clip=0.3, noise_multiplier=1.5, learning_rate=1.0, seed=0)
    dp.step(x, y, denominator=1.0, capacity=16)
    noise = np.concatenate(
        [
            ((b - v.numpy()) - r).ravel()
            for b, v, r in zip(before, model.trainable_variables, ref, strict=True)
        ]
    )
    assert noise.size > 20_000
    assert abs(noise.mean()) < 0.05
    assert noise.std() == pytest.approx(1.5 * 0.3, rel=0.02)


def test_training_learns_and_reports_the_accountant_epsilon():
    ds = lk.load_digits()
    lk.set_seed(0)
    model = lk.build_model("logistic", ds.input_shape, ds.num_classes)
    hist = lk.dp.train_dpsgd(
        model,
        ds.x_train,
        ds.y_train,
        l2_norm_clip=1.0,
        noise_multiplier=1.0,
        batch_size=64,
        epochs=4,
        learning_rate=1.0,
        validation_data=(ds.x_test, ds.y_test),
        seed=0,
    )
    assert hist.test_accuracy[-1] > 0.8
    n = len(ds.x_train)
    steps = lk.dp.schedule(n, 64, 4).steps
    assert hist.epsilon[-1] == pytest.approx(lk.dp.dpsgd_epsilon(1.0, 64, n, 4, 1e-5, steps=steps))
    assert hist.epsilon[-1] == pytest.approx(lk.dp.dpsgd_epsilon(1.0, 64, n, 4, 1e-5))
    assert hist.epsilon == sorted(hist.epsilon)


def test_poisson_batches_have_the_expected_size():
    batches = lk.dp.poisson_batches(10_000, 100, np.random.default_rng(0))
    sizes = np.array([len(b) for b in batches])
    assert len(batches) == 100
    assert sizes.mean() == pytest.approx(100, rel=0.05)
    assert 5 < sizes.std() < 15  # binomial: sqrt(100 * 0.99) ~ 10


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"l2_norm_clip": 0.0}, "l2_norm_clip"),
        ({"l2_norm_clip": -1.0}, "l2_norm_clip"),
        ({"noise_multiplier": -0.1}, "noise_multiplier"),
        ({"batch_size": 10_000}, "batch_size"),
        ({"delta": 2.0}, "delta"),
        ({"sampling": "random"}, "sampling"),
        ({"method": "magic"}, "method"),
    ],
)
def test_bad_training_input(kwargs, match):
    ds = lk.load_digits()
    model = lk.build_model("logistic", ds.input_shape, ds.num_classes)
    args = dict(l2_norm_clip=1.0, noise_multiplier=1.0, batch_size=32, epochs=1, learning_rate=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lk.dp.train_dpsgd(model, ds.x_train[:100], ds.y_train[:100], **args)


def test_unsupported_layer_is_named():
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(4,)),
            tf.keras.layers.Dense(3),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Dense(2),
        ]
    )
    with pytest.raises(ValueError, match="batch_normalization.*vectorized"):
        lk.dp.DPSGD(model, 1.0, 1.0)


def test_reference_clipped_sum_matches_the_test_loop(batch):
    x, y = batch
    tf.keras.utils.set_random_seed(5)
    model = MODELS["mlp"]()
    ours = lk.dp.reference_clipped_sum(model, x[:4], y[:4], 0.5)
    ref, _ = loop_reference(model, x[:4], y[:4], 0.5)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_dp_audit_stays_below_the_accountant_and_sweep_calibrates():
    ds = lk.load_digits()
    out = lk.experiments.dp_membership_experiment(
        ds, 300, noise_multiplier=1.0, epochs=5, batch_size=50, model_name="logistic", seed=0
    )
    assert out["audit"].epsilon_lower_bound <= out["epsilon"]
    assert out["epsilon"] == pytest.approx(lk.dp.dpsgd_epsilon(1.0, 50, 300, 5, 1e-5, steps=30))
    rows = lk.experiments.privacy_utility_sweep(
        ds,
        [2.0],
        lambda: lk.build_model("logistic", ds.input_shape, ds.num_classes),
        epochs=2,
        batch_size=64,
        l2_norm_clip=1.0,
        learning_rate=0.5,
    )
    assert rows[0]["epsilon"] <= 2.0 + 1e-6 and rows[0]["test_accuracy"] > 0.5
