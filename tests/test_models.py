"""Models, config and plots."""

import json

import numpy as np
import pytest

import labkit as lk


def test_mcmahan_model_sizes():
    # Parameter counts of McMahan et al. 2017's 2NN and CNN on MNIST.
    assert lk.count_params(lk.build_model("2nn", (28, 28), 10)) == 199_210
    assert lk.count_params(lk.build_model("cnn", (28, 28), 10)) == 1_663_370
    assert lk.count_params(lk.build_model("logistic", (28, 28), 10)) == 7_850


def test_small_variants_are_smaller_and_output_logits():
    for name in ("2nn", "cnn"):
        small = lk.build_model(name, (28, 28), 10, small=True)
        assert lk.count_params(small) < lk.count_params(lk.build_model(name, (28, 28), 10)) / 3
        out = small(np.zeros((3, 28, 28), np.float32))
        assert out.shape == (3, 10)
    cnn8 = lk.build_model("cnn", (8, 8), 10, small=True)
    assert cnn8(np.zeros((2, 8, 8), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match="name must be one of"):
        lk.build_model("resnet", (28, 28), 10)


def test_seeded_models_are_identical():
    a = lk.build_model("2nn", (8, 8), 10, small=True, seed=3)
    b = lk.build_model("2nn", (8, 8), 10, small=True, seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_training_learns_and_evaluate_matches_keras():
    lk.set_seed(0)
    ds = lk.load_digits()
    model = lk.models.compile_model(
        lk.build_model("logistic", ds.input_shape, 10), learning_rate=0.5
    )
    model.fit(ds.x_train, ds.y_train, epochs=5, batch_size=32, verbose=0)
    loss, acc = lk.models.evaluate(model, ds.x_test, ds.y_test)
    k_loss, k_acc = model.evaluate(ds.x_test, ds.y_test, verbose=0)
    assert acc > 0.85
    assert loss == pytest.approx(k_loss, rel=1e-4) and acc == pytest.approx(k_acc, abs=1e-6)
    per_ex = lk.models.per_example_loss(model, ds.x_test, ds.y_test)
    assert per_ex.shape == (len(ds.y_test),) and per_ex.mean() == pytest.approx(loss, rel=1e-5)


def test_set_seed_makes_numpy_and_tf_repeatable():
    import tensorflow as tf

    lk.set_seed(5)
    a = (np.random.rand(), tf.random.uniform(()).numpy())
    lk.set_seed(5)
    b = (np.random.rand(), tf.random.uniform(()).numpy())
    assert a == b
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        lk.set_seed(-1)


def test_full_switch(monkeypatch):
    monkeypatch.delenv("LABKIT_FULL", raising=False)
    assert not lk.is_full() and lk.scale(1, 2) == 1
    monkeypatch.setenv("LABKIT_FULL", "1")
    assert lk.is_full() and lk.scale(1, 2) == 2


def test_plots_return_fig_and_axes_with_labels():
    counts = lk.data.label_counts(
        np.repeat(np.arange(10), 20), lk.data.partition_shards(np.repeat(np.arange(10), 20), 10)
    )
    fig, ax = lk.plots.plot_label_distribution(counts)
    assert ax.get_xlabel() == "client" and "examples" in ax.get_ylabel()
    fig, ax = lk.plots.plot_lines(
        {"a": ([1, 2], [3, 4])}, "round", "accuracy", hlines={"target": 3.5}
    )
    assert ax.get_legend() is not None and len(ax.lines) == 2
    fig, ax = lk.plots.plot_bars({"x": 1.0, "y": 2.0}, "seconds")
    assert len(ax.patches) == 2


def test_training_refuses_float_labels_and_nan_inputs():
    ds = lk.data.subsample(lk.load_digits(), 100, 50, seed=0)
    model = lk.build_model("logistic", ds.input_shape, 10)
    with pytest.raises(lk.ParameterError, match="fractional"):
        lk.models.train(model, ds.x_train, ds.y_train + 0.3, epochs=1)
    bad = ds.x_train.copy()
    bad[1, 2] = np.inf
    with pytest.raises(lk.ParameterError, match="x must be finite"):
        lk.models.evaluate(model, bad, ds.y_train)
    with pytest.raises(lk.ParameterError, match="epochs must be an integer >= 1"):
        lk.models.train(model, ds.x_train, ds.y_train, epochs=0)


def test_plot_membership_and_marked_bars():
    import numpy as np

    audit = lk.attacks.loss_threshold_attack(np.full(5, 0.01), np.linspace(0.001, 2, 5))
    fig, axes = lk.plots.plot_membership(np.full(5, 0.01), np.linspace(0.001, 2, 5), audit)
    assert len(axes) == 2 and axes[0].get_xlabel() == "log10 cross-entropy loss"
    assert f"AUC {audit.auc:.2f}" in axes[1].get_legend_handles_labels()[1][0]
    fig, ax = lk.plots.plot_marked_bars({"x": 1.0, "y": 100.0}, ["y"], "s", "extrapolated")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["x", "y (extrapolated)"]
    assert [p.get_hatch() for p in ax.patches] == [None, "//"]
    assert ax.get_xscale() == "log"


LAZY_SEED = """
import json, sys
import numpy as np
import labkit as lk
lk.set_seed(3)
loaded_early = "tensorflow" in sys.modules
before = np.random.rand()  # a draw between set_seed and the first TensorFlow import
import tensorflow as tf
from tensorflow.python.framework import config as tf_config
after = np.random.rand()  # the import must not re-seed NumPy
dense = tf.keras.layers.Dense(2)
dense.build((None, 3))
print(json.dumps({"loaded_early": loaded_early, "numpy": [before, after],
                  "uniform": float(tf.random.uniform(())),
                  "kernel": dense.kernel.numpy().ravel().tolist(),
                  "deterministic": tf_config.is_op_determinism_enabled()}))
"""


def test_set_seed_seeds_tensorflow_at_its_first_import_as_if_it_were_loaded():
    import subprocess
    import sys

    import tensorflow as tf

    proc = subprocess.run([sys.executable, "-c", LAZY_SEED], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lazy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert lazy["loaded_early"] is False and lazy["deterministic"] is True
    lk.set_seed(3)  # TensorFlow already loaded here: seeded at once
    expected_numpy = [np.random.rand(), np.random.rand()]
    uniform = float(tf.random.uniform(()))
    dense = tf.keras.layers.Dense(2)
    dense.build((None, 3))
    assert lazy["numpy"] == expected_numpy
    assert lazy["uniform"] == uniform
    assert lazy["kernel"] == dense.kernel.numpy().ravel().tolist()
