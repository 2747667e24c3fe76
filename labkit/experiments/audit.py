"""Chapter 03's audit: one DP-SGD run with inserted canaries, audited in one run.

Steinke, Nasr & Jagielski (2023): ``num_canaries`` mislabelled training images are each inserted
with probability 1/2 into a small training set; DP-SGD (or the same code with no noise) trains
for many epochs; the loss on each canary's wrong label scores its membership, and
``labkit.attacks.audit.canary_audit`` turns the guesses into a lower bound on epsilon.
"""

from __future__ import annotations

import numpy as np

from labkit._checks import check_float, check_int

__all__ = ["canary_split", "canary_audit_experiment"]


def canary_split(ds, num_train: int, num_canaries: int, seed: int = 0):
    """Return ``(x_base, y_base), (x_canary, y_canary), included`` drawn from ``ds``'s train set.

    Canaries are training images given a random *wrong* label (so only memorisation fits them);
    ``included`` says which are inserted, each independently with probability 1/2. All of it
    depends only on ``seed``: runs with one seed audit the same canaries.
    """
    num_train = check_int("num_train", num_train, 1)
    num_canaries = check_int("num_canaries", num_canaries, 2, len(ds.x_train) - num_train)
    gen = np.random.default_rng(seed)
    order = gen.permutation(len(ds.x_train))
    base, canary = order[:num_train], order[num_train : num_train + num_canaries]
    shift = gen.integers(1, ds.num_classes, size=num_canaries)
    y_canary = (ds.y_train[canary] + shift) % ds.num_classes  # never the true label
    included = gen.random(num_canaries) < 0.5
    return (ds.x_train[base], ds.y_train[base]), (ds.x_train[canary], y_canary), included


def canary_audit_experiment(
    ds,
    epsilon: float | None,
    num_train: int = 500,
    num_canaries: int = 200,
    num_guesses: int = 40,
    l2_norm_clip: float = 1.0,
    epochs: int = 40,
    batch_size: int = 50,
    learning_rate: float = 0.2,
    momentum: float = 0.9,
    delta: float = 1e-5,
    confidence: float = 0.95,
    hidden: tuple[int, ...] = (128,),
    seed: int = 0,
    noise_seed: int | None = None,
) -> dict:
    """Train on a small set plus the inserted canaries; return the audit and the run's numbers.

    Args:
        ds: a labkit dataset (``x_train``, ``y_train``, ``x_test``, ``y_test``, ...).
        epsilon: the accountant's target epsilon at ``delta`` (noise from dp-accounting for this
            run's size), or None for the non-private run: the same DP-SGD code and clipping with
            noise multiplier 0, so only the noise differs.
        num_guesses: fixed in advance (half "in", half "out"), as the audit requires.
        seed: fixes the split, the canaries, their inclusion and the initial weights.
        noise_seed: None (default) draws DP-SGD's sampling and noise from the OS-seeded source;
            an int makes them reproducible (teaching, tests).

    Returns:
        A dict with ``audit`` (``CanaryAudit``), ``epsilon`` (the accountant's, None if
        non-private), ``noise_multiplier``, ``test_accuracy``, ``scores``, ``included``.
    """
    import tensorflow as tf

    from labkit.attacks.audit import canary_audit
    from labkit.dp import dpsgd_noise_multiplier
    from labkit.experiments import _dpsgd  # the package has loaded: this module is lazy
    from labkit.models import evaluate, mlp, per_example_loss

    if epsilon is not None:
        epsilon = check_float("epsilon", epsilon, 0.0, low_open=True)
    (xb, yb), (xc, yc), included = canary_split(ds, num_train, num_canaries, seed)
    x = np.concatenate([xb, xc[included]])
    y = np.concatenate([yb, yc[included]])
    n = len(x)
    sigma = 0.0
    if epsilon is not None:
        sigma = dpsgd_noise_multiplier(epsilon, batch_size, n, epochs, delta)
    tf.keras.utils.set_random_seed(seed)
    model = mlp(ds.input_shape, ds.num_classes, hidden=hidden)
    train = _dpsgd(l2_norm_clip, batch_size, epochs, learning_rate, momentum, delta, noise_seed)
    history = train(model, x, y, noise_multiplier=sigma)
    scores = -per_example_loss(model, xc, yc)  # low loss on the wrong label: inserted
    audit = canary_audit(scores, included, num_guesses, delta=delta, confidence=confidence)
    return {
        "audit": audit,
        "epsilon": float(history.epsilon[-1]) if epsilon is not None else None,
        "noise_multiplier": sigma,
        "test_accuracy": evaluate(model, ds.x_test, ds.y_test)[1],
        "scores": scores,
        "included": included,
    }
