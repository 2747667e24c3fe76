"""The per-layer rule registry: every rule exact against a per-example loop, or refused by name.

Each case of issue 20's "found by trying" list is here: exact with noise off against
``reference_clipped_sum`` (one GradientTape per example, then clip), or refused before training
with a ``ParameterError`` naming the layer and the option.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

import labkit as lk
from labkit._checks import ParameterError

K = tf.keras.layers
VOCAB = 11


def _lm(*middle, head=None, seq_len=6, emb=None):
    tf.keras.utils.set_random_seed(1)
    return tf.keras.Sequential(
        [K.InputLayer(input_shape=(seq_len,)), emb or K.Embedding(VOCAB, 4), *middle,
         head or K.Dense(VOCAB)]
    )  # fmt: skip


def _codes(n=5, seq_len=6, per_position=True):
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (n, seq_len)).astype(np.float32)
    y = rng.integers(0, VOCAB, (n, seq_len) if per_position else (n,))
    return x, y


def _assert_exact(model, x, y, clip, method="ghost", loss=None, mask=None):
    dp = lk.dp.DPSGD(model, clip, 0.0, method=method, loss=loss)
    got, norms = dp.clipped_gradient_sum(x, y, mask)
    if mask is None:
        ref = lk.dp.reference_clipped_sum(model, x, y, clip, loss=loss)
    else:  # the reference, one example at a time, weighted
        parts = [lk.dp.reference_clipped_sum(model, x[i : i + 1], y[i : i + 1], clip, loss=loss)
                 for i in range(len(x))]  # fmt: skip
        ref = [sum(m * p[j] for m, p in zip(mask, parts, strict=True)) for j in range(len(got))]
    assert len(got) == len(model.trainable_variables)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * max(1e-3, np.abs(r).max()))
    return norms


# --- exact: every registered rule, and the options the issue found computed wrongly --------
@pytest.mark.parametrize(
    "name,model,per_position",
    [
        (
            "gru, tanh output",
            lambda: _lm(K.GRU(5, return_sequences=True), head=K.Dense(VOCAB, activation="tanh")),
            True,
        ),  # fmt: skip
        (
            "gru, no biases",
            lambda: _lm(
                K.GRU(5, return_sequences=True, use_bias=False), head=K.Dense(VOCAB, use_bias=False)
            ),
            True,
        ),  # fmt: skip
        ("lstm, no bias, last", lambda: _lm(K.LSTM(5, use_bias=False)), False),
        ("gru, relu activation", lambda: _lm(K.GRU(5, activation="relu")), False),
        ("two dense on sequences", lambda: _lm(K.Dense(7, activation="tanh")), True),
        ("stacked gru", lambda: _lm(K.GRU(5, return_sequences=True), K.GRU(4)), False),
    ],
)
def test_recurrent_and_embedding_rules_are_exact(name, model, per_position):
    x, y = _codes(per_position=per_position)
    m = model()
    norms = _assert_exact(m, x, y, 0.05)
    assert np.all(norms > 0.05)  # every example clipped: the clip factors matter


# The sigmoid output fed to a from-logits loss is on purpose (any output must clip exactly);
# Keras's "was this intended?" warning is answered here.
@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`:UserWarning")
def test_dense_and_conv_without_bias_and_with_output_activation_are_exact():
    tf.keras.utils.set_random_seed(2)
    model = tf.keras.Sequential([
        K.InputLayer(input_shape=(8, 8, 2)),
        K.Conv2D(3, 3, use_bias=False, activation="relu"),
        K.AveragePooling2D(),
        K.Flatten(),
        K.Dense(5, use_bias=False, activation="tanh"),
        K.Dense(4, activation="sigmoid"),
    ])  # fmt: skip
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    _assert_exact(model, x, y, 0.1)
    _assert_exact(model, x, y, 1e6)  # nothing clipped: the plain gradient sum


def test_mask_weights_in_0_1_are_exact_and_above_1_refused():
    x, y = _codes()
    model = _lm(K.GRU(5, return_sequences=True))
    _assert_exact(model, x, y, 0.05, mask=np.array([1.0, 0.0, 0.5, 1.0, 0.25]))
    dp = lk.dp.DPSGD(model, 0.05, 0.0)
    for bad in ([2.0, 1, 1, 1, 1], [-0.5, 1, 1, 1, 1]):
        with pytest.raises(ParameterError, match="mask must be weights in \\[0, 1\\]"):
            dp.clipped_gradient_sum(x, y, np.array(bad))


def test_a_per_example_custom_loss_is_exact_and_a_reduced_loss_refused():
    x, y = _codes(per_position=False)
    model = _lm(K.GRU(5))

    def focal(y_true, logits):  # per example, not the default cross-entropy
        ce = tf.keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        return ce * (1.0 - tf.exp(-ce)) ** 2

    _assert_exact(model, x, y, 0.05, loss=focal)
    mean_loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dp = lk.dp.DPSGD(model, 0.05, 0.0, loss=mean_loss)
    with pytest.raises(ParameterError, match="loss must be one loss per example") as err:
        dp.clipped_gradient_sum(x, y)
    assert err.value.name == "loss"
    with pytest.raises(ParameterError, match="loss must be one loss per example"):
        dp.step(x, y, denominator=5.0, capacity=5)


# --- refused before training, naming the layer and the option ------------------------------
@pytest.mark.parametrize(
    "model,match",
    [
        (lambda: _lm(K.GRU(5), emb=K.Embedding(VOCAB, 4, mask_zero=True)), "mask_zero=True"),
        (lambda: _lm(K.GRU(5, recurrent_dropout=0.5)), "gru.*recurrent_dropout=0.5"),
        (lambda: _lm(K.GRU(5, dropout=0.2)), "gru.*dropout=0.2"),
        (lambda: _lm(K.GRU(5, reset_after=False)), "gru.*reset_after=False"),
        (lambda: _lm(K.LSTM(5, go_backwards=True)), "lstm.*go_backwards=True"),
        (lambda: _lm(K.Bidirectional(K.GRU(5))), "Bidirectional.*no per-example rule"),
        (lambda: _lm(K.BatchNormalization()), "BatchNormalization.*no per-example rule"),
        (lambda: _lm(K.Dense(4, kernel_regularizer="l2")), "kernel_regularizer"),
        (lambda: _lm(K.Masking()), "Masking"),
    ],
)
def test_unsupported_layers_and_options_are_refused_by_name(model, match):
    m = model()
    with pytest.raises(ParameterError, match=match) as err:
        lk.dp.DPSGD(m, 1.0, 1.0, method="ghost-recurrent")
    assert err.value.name == "model"


def test_a_subclassed_model_is_refused_for_ghost_and_exact_with_vectorized():
    class Net(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = K.Dense(4, activation="tanh"), K.Dense(3)

        def call(self, x):
            return self.b(self.a(x))

    tf.keras.utils.set_random_seed(0)
    model = Net()
    model(tf.zeros((1, 5)))
    with pytest.raises(ParameterError, match="subclassed.*vectorized"):
        lk.dp.DPSGD(model, 1.0, 1.0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 5)).astype(np.float32), rng.integers(0, 3, 6)
    _assert_exact(model, x, y, 0.2, method="vectorized")


def test_character_codes_must_be_whole_and_in_the_vocabulary():
    x, y = _codes()
    model = _lm(K.GRU(5, return_sequences=True))
    dp = lk.dp.DPSGD(model, 1.0, 0.0)
    for bad in (x + 0.7, np.where(x == x.max(), VOCAB, x), -x - 1):
        with pytest.raises(ParameterError, match="x must be whole-number codes in \\[0, 11\\)"):
            dp.clipped_gradient_sum(bad, y)
        with pytest.raises(ParameterError, match="x must be whole-number codes"):
            lk.dp.train_dpsgd(model, bad, y, l2_norm_clip=1.0, noise_multiplier=1.0,
                              batch_size=5, epochs=1, learning_rate=0.1)  # fmt: skip


def test_labels_outside_the_model_outputs_are_refused():
    x, y = _codes(per_position=False)
    with pytest.raises(ParameterError, match="y must be class labels in \\[0, 11\\)"):
        lk.dp.train_dpsgd(_lm(K.GRU(5)), x, y + VOCAB, l2_norm_clip=1.0, noise_multiplier=1.0,
                          batch_size=5, epochs=1, learning_rate=0.1)  # fmt: skip


def test_a_model_already_nan_is_refused_naming_the_model_not_the_learning_rate():
    model = _lm(K.GRU(5))
    model.layers[-1].bias.assign(np.full(VOCAB, np.nan, np.float32))
    with pytest.raises(ParameterError, match="NaN or inf before training") as err:
        lk.dp.DPSGD(model, 1.0, 1.0)
    assert err.value.name == "model"


def test_dpsgd_epsilon_with_huge_noise_is_a_valid_bound_not_a_crash():
    eps = [lk.dp.dpsgd_epsilon(s, 256, 60_000, 1, 1e-5) for s in (1e3, 1e6, 1e300)]
    assert eps[0] > 0 and eps[1] == eps[2] and 0 <= eps[1] <= eps[0]
    assert lk.dp.dpsgd_epsilon(1e6, 256, 60_000, 1, 1e-5, "pld") <= eps[0]
    assert not math.isnan(eps[1])
