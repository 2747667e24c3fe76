"""Gradient leakage: one client's shared gradient gives its training image back."""

import numpy as np
import pytest

import labkit as lk


@pytest.fixture(scope="module")
def mnist():
    return lk.data.subsample(lk.load_mnist(), 20, 10, seed=0)


@pytest.mark.parametrize(("name", "small"), [("logistic", False), ("2nn", True), ("2nn", False)])
def test_analytic_reconstruction_is_exact_for_one_example(mnist, name, small):
    model = lk.build_model(name, mnist.input_shape, 10, small=small, seed=0)
    for i in range(3):
        x, y = mnist.x_train[i : i + 1], mnist.y_train[i : i + 1]
        grads = lk.attacks.model_gradients(model, x, y)
        assert lk.attacks.infer_label(model, grads) == y[0]
        rec = lk.attacks.reconstruct_input_analytic(model, grads)
        assert rec.shape == x.shape[1:]
        np.testing.assert_allclose(rec, x[0], rtol=0, atol=1e-5)


def test_batch_of_two_is_not_recovered_exactly(mnist):
    # Negative control: the closed form is exact only for one example, so this must fail to match.
    model = lk.build_model("logistic", mnist.input_shape, 10, seed=0)
    grads = lk.attacks.model_gradients(model, mnist.x_train[:2], mnist.y_train[:2])
    rec = lk.attacks.reconstruct_input_analytic(model, grads)
    assert min(np.abs(rec - mnist.x_train[i]).max() for i in range(2)) > 0.1


def test_deep_leakage_lbfgs_recovers_a_known_image(mnist):
    model = lk.build_model("logistic", mnist.input_shape, 10, seed=0)
    x, y = mnist.x_train[3:4], mnist.y_train[3:4]
    grads = lk.attacks.model_gradients(model, x, y)
    start = np.full(x.shape[1:], 0.5)  # the attack's starting point (plus small noise) is far off
    assert np.mean((start - x[0]) ** 2) > 0.05
    result = lk.attacks.deep_leakage(model, grads, max_iter=300, seed=1)
    assert result.label == y[0]
    assert np.mean((result.x - x[0]) ** 2) < 1e-6
    assert result.grad_distance < 1e-8


def test_bad_input(mnist):
    model = lk.build_model("logistic", mnist.input_shape, 10, seed=0)
    grads = lk.attacks.model_gradients(model, mnist.x_train[:1], mnist.y_train[:1])
    with pytest.raises(ValueError, match=r"grads must be shapes \["):
        lk.attacks.reconstruct_input_analytic(model, grads[:1])
    with pytest.raises(ValueError, match="label must be an integer in"):
        lk.attacks.deep_leakage(model, grads, label=10)
    with pytest.raises(ValueError, match="max_iter"):
        lk.attacks.deep_leakage(model, grads, max_iter=0)
    with pytest.raises(ValueError, match="grads must be a nonzero first-layer bias gradient"):
        lk.attacks.reconstruct_input_analytic(model, [np.zeros_like(g) for g in grads])
    with pytest.raises(ValueError, match=r"x must be shape \(n >= 1, "):
        lk.attacks.model_gradients(model, mnist.x_train[:1].reshape(1, -1), mnist.y_train[:1])
