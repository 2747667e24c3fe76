"""One step schedule: calibration, accounting and training count the same steps (issue 20)."""

import numpy as np
import pytest
import tensorflow as tf

import labkit as lk
from labkit.dp.dpsgd import DPSGD


def test_the_issue_example_has_one_step_count():
    plan = lk.dp.schedule(10_000, 512, 3)
    assert plan.steps == 59 and plan.epoch_ends == (20, 40, 59)
    assert plan.sampling_probability == 512 / 10_000
    assert [plan.steps_in_epoch(e) for e in (1, 2, 3)] == [20, 20, 19]
    assert lk.dp.num_steps(3, 512, 10_000) == 59


@pytest.mark.parametrize(
    "n,batch,epochs",
    [(10_000, 512, 3), (60_000, 512, 40), (997, 50, 7), (1_000, 1_000, 2), (1_001, 1_000, 2)],
)
def test_schedule_is_ceil_of_epochs_times_n_over_l(n, batch, epochs):
    plan = lk.dp.schedule(n, batch, epochs)
    # Exact rational ceilings, independent of the module's arithmetic.
    assert plan.epoch_ends == tuple(-(-e * n // batch) for e in range(1, epochs + 1))
    assert plan.steps * batch >= epochs * n > (plan.steps - 1) * batch


def test_fractional_epochs_and_bad_input():
    assert lk.dp.schedule(100, 30, 0.5).steps == 2
    assert lk.dp.schedule(100, 30, 1.5).epoch_ends == (4, 5)
    with pytest.raises(lk.ParameterError, match="batch_size"):
        lk.dp.schedule(100, 101, 1)
    with pytest.raises(lk.ParameterError, match="epochs"):
        lk.dp.schedule(100, 10, 0)


@pytest.mark.parametrize(
    "n,batch,epochs,sampling",
    [(10_000, 512, 3, "poisson"), (1_003, 97, 2, "poisson"), (1_003, 97, 2, "shuffle")],
)
def test_a_run_asking_for_a_target_epsilon_ends_at_or_below_it(monkeypatch, n, batch, epochs,
                                                               sampling):  # fmt: skip
    target, delta = 2.0, 1e-5
    sigma = lk.dp.dpsgd_noise_multiplier(target, batch, n, epochs, delta)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    steps = []
    original = DPSGD.step
    monkeypatch.setattr(
        DPSGD, "step", lambda self, *a: steps.append(len(a[0])) or original(self, *a)
    )
    tf.keras.utils.set_random_seed(0)
    model = lk.mlp((3,), 2, hidden=(4,))
    hist = lk.dp.train_dpsgd(model, x, y, l2_norm_clip=1.0, noise_multiplier=sigma,
                             batch_size=batch, epochs=epochs, learning_rate=0.1,
                             sampling=sampling, seed=1, on_epoch_end=lambda h: None)  # fmt: skip
    plan = lk.dp.schedule(n, batch, epochs)
    assert len(steps) == plan.steps  # trained exactly the calibrated steps
    assert hist.epsilon[-1] <= target
    for e, eps in zip(hist.epochs, hist.epsilon, strict=True):
        assert eps == pytest.approx(
            lk.dp.dpsgd_epsilon(sigma, batch, n, e, delta, steps=plan.epoch_ends[e - 1])
        )
    if sampling == "shuffle":
        assert set(steps) == {batch}  # fixed-size batches, cut from a stream of permutations


def test_shuffled_batches_cover_every_example_once_per_pass():
    batches = lk.dp.shuffled_batches(10, 4, np.random.default_rng(0), steps=5)  # two passes
    stream = np.concatenate(batches)
    assert all(len(b) == 4 for b in batches)
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
