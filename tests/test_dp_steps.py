"""Named DP-SGD steps, each alone (clip_and_accumulate -> add_noise -> scale_grad -> apply), and
the one Gaussian sum query shared by DP-SGD and DP-FedAvg, with accounting kept apart."""

import dp_accounting
import numpy as np
import pytest
import tensorflow as tf

import labkit as lk
from labkit._checks import ParameterError
from labkit.dp.query import GaussianSumQuery


def _model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    return lk.mlp((5,), 3, hidden=(6,))


def _batch(n=10):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n)


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


def test_the_four_named_steps_compose_to_one_step():
    x, y = _batch()
    fused, parts = _model(), _model()
    a = lk.dp.DPSGD(fused, 0.5, 1.3, learning_rate=0.2, seed=4)
    b = lk.dp.DPSGD(parts, 0.5, 1.3, learning_rate=0.2, seed=4)
    a.step(x, y, denominator=10.0, capacity=10)
    grads, _ = b.clip_and_accumulate(x, y)
    b.apply(b.scale_grad(b.add_noise(grads), 10.0))
    for u, v in zip(_weights(fused), _weights(parts), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


def test_add_noise_alone_adds_gaussian_noise_of_std_z_times_c():
    dp = lk.dp.DPSGD(lk.mlp((50,), 40, hidden=(200,)), 0.3, 1.5, seed=0)
    zeros = [tf.zeros_like(v) for v in dp.model.trainable_variables]
    noise = np.concatenate([g.numpy().ravel() for g in dp.add_noise(zeros)])
    assert noise.size > 15_000
    assert abs(noise.mean()) < 4 * 0.45 / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.45, rel=0.03)
    # Each draw takes a fresh key from the generator: the next step's noise is independent,
    # not a repeat (as a generator that failed to advance would give).
    again = np.concatenate([g.numpy().ravel() for g in dp.add_noise(zeros)])
    assert abs(np.corrcoef(noise, again)[0, 1]) < 4 / np.sqrt(noise.size)
    # Unseeded trainers never share noise; one seed reproduces it.
    fresh = [lk.dp.DPSGD(dp.model, 0.3, 1.5) for _ in range(2)]
    first = [np.concatenate([g.numpy().ravel() for g in f.add_noise(zeros)]) for f in fresh]
    assert not np.allclose(first[0], first[1])
    twin = lk.dp.DPSGD(dp.model, 0.3, 1.5, seed=0)
    np.testing.assert_array_equal(
        np.concatenate([g.numpy().ravel() for g in twin.add_noise(zeros)]), noise
    )
    quiet = lk.dp.DPSGD(_model(), 0.3, 0.0)
    ones = [tf.ones_like(v) for v in quiet.model.trainable_variables]
    for g in quiet.add_noise(ones):  # no noise: unchanged
        np.testing.assert_array_equal(g.numpy(), 1.0)


def test_scale_grad_and_apply_alone_are_exact():
    model = _model()
    dp = lk.dp.DPSGD(model, 1.0, 0.0, learning_rate=0.5)
    before = _weights(model)
    grads = [np.full(v.shape, 3.0, np.float32) for v in model.trainable_variables]
    scaled = dp.scale_grad(grads, 6.0)
    for g in scaled:
        np.testing.assert_array_equal(g.numpy(), 0.5)
    dp.apply(scaled)
    for w, b in zip(_weights(model), before, strict=True):
        np.testing.assert_allclose(w, b - 0.25, rtol=1e-6)
    with pytest.raises(ParameterError, match="denominator"):
        dp.scale_grad(grads, 0.0)


def test_clip_and_accumulate_alone_is_the_reference_clipped_sum():
    x, y = _batch()
    model = _model(1)
    grads, norms = lk.dp.DPSGD(model, 0.2, 5.0).clip_and_accumulate(x, y)  # no noise here
    assert np.all(norms > 0.2)
    for g, r in zip(grads, lk.dp.reference_clipped_sum(model, x, y, 0.2), strict=True):
        np.testing.assert_allclose(g.numpy(), r, rtol=1e-4, atol=1e-6)


def test_the_gaussian_sum_query_clips_reports_and_adds_noise():
    q = GaussianSumQuery(2.0, 0.5)
    v, norm = q.clip(np.array([3.0, 4.0]))
    np.testing.assert_allclose(v, [1.2, 1.6])
    assert norm == 5.0 and q.noise_std == 1.0
    v, _ = q.clip(np.array([0.3, 0.4]))
    np.testing.assert_allclose(v, [0.3, 0.4])  # inside the ball: unchanged
    assert q.event() == dp_accounting.GaussianDpEvent(0.5)
    noisy = q.add_noise(np.zeros(40_000), np.random.default_rng(0))
    assert noisy.std() == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ParameterError, match="l2_norm_clip"):
        GaussianSumQuery(0.0, 1.0)


def test_dpfedavg_uses_the_query_and_an_accountant_composes_what_it_reports():
    agg = lk.dp.DPFedAvgAggregator(1.0, 1.1, clients_per_round=3, seed=5)
    updates = [[np.full(4, float(k), np.float32)] for k in range(1, 4)]
    out = [agg.aggregate(updates, np.ones(3))[0] for _ in range(4)]
    assert agg.events == [GaussianSumQuery(1.0, 1.1).event()] * 4
    assert agg.epsilon(30, 1e-5) == pytest.approx(lk.dp.dpfedavg_epsilon(1.1, 3, 30, 4, 1e-5))
    # The same noise as the query draws from the same seeded generator.
    rng = np.random.default_rng(5)
    total = sum(GaussianSumQuery(1.0, 1.1).clip(u[0])[0] for u in updates)
    np.testing.assert_allclose(out[0], GaussianSumQuery(1.0, 1.1).add_noise(total, rng) / 3,
                               rtol=1e-6)  # fmt: skip
