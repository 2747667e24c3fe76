"""The end-to-end experiments the chapters run: split, build, train, attack, measure.

This is the top floor: it combines the algorithms (``fl``, ``dp``, ``attacks``), which do not
import each other. Every membership experiment is one function, ``membership_experiment``, with
the training step as an argument; the named ones only choose that step. Chapter 08's
language-model experiments: ``labkit.experiments.text``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from labkit._checks import ParameterError, check_int
from labkit._lazy import lazy_submodules
from labkit.aggregation import Aggregator
from labkit.attacks import audit_model

__all__ = [
    "member_split",
    "membership_experiment",
    "memorisation_experiment",
    "dp_membership_experiment",
    "federated_membership_experiment",
    "privacy_utility_sweep",
]


def member_split(ds, num_members: int, seed: int = 0):
    """Draw ``num_members`` members and as many non-members from ``ds``'s training set.

    Both come from the same pool at random, so any gap an attack finds is memorisation of the
    members, not a difference between the two samples. Returns ``((x, y), (x, y))``.
    """
    num_members = check_int("num_members", num_members, 1, len(ds.x_train) // 2)
    order = np.random.default_rng(seed).permutation(len(ds.x_train))[: 2 * num_members]
    inside, outside = order[:num_members], order[num_members:]
    return (ds.x_train[inside], ds.y_train[inside]), (ds.x_train[outside], ds.y_train[outside])


def membership_experiment(
    ds,
    num_members: int,
    train_fn: Callable,
    model_name: str = "2nn",
    small: bool = False,
    delta: float = 0.0,
    seed: int = 0,
) -> dict:
    """Train a fresh model on ``num_members`` random examples, then audit their membership.

    ``train_fn(model, (x, y))`` trains ``model`` in place on the members and may return a dict
    of extra results (an epsilon, a history), merged into the returned dict beside ``model``,
    ``audit``, ``member_losses``, ``nonmember_losses``, ``train_accuracy`` and ``test_accuracy``.
    The split depends only on ``seed``, so experiments with one seed audit the same examples.
    """
    from labkit.models import build_model, evaluate

    members, nonmembers = member_split(ds, num_members, seed)
    model = build_model(model_name, ds.input_shape, ds.num_classes, small=small, seed=seed)
    extra = train_fn(model, members) or {}
    audit, member_losses, nonmember_losses = audit_model(model, members, nonmembers, delta=delta)
    return {
        "model": model,
        "audit": audit,
        "member_losses": member_losses,
        "nonmember_losses": nonmember_losses,
        "train_accuracy": evaluate(model, *members)[1],
        "test_accuracy": evaluate(model, ds.x_test, ds.y_test)[1],
        **extra,
    }


def memorisation_experiment(
    ds,
    num_members: int,
    model_name: str = "2nn",
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    small: bool = False,
    seed: int = 0,
) -> dict:
    """Non-private training (Adam) on ``num_members`` examples, audited against as many others."""
    from labkit.models import train

    def fit(model, members):
        train(model, *members, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)

    return membership_experiment(ds, num_members, fit, model_name, small, seed=seed)


def dp_membership_experiment(
    ds,
    num_members: int,
    noise_multiplier: float,
    l2_norm_clip: float = 1.0,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 0.5,
    momentum: float = 0.9,
    delta: float = 1e-5,
    model_name: str = "2nn",
    small: bool = False,
    seed: int = 0,
    noise_seed: int | None = None,
) -> dict:
    """DP-SGD on ``num_members`` examples, audited; adds ``epsilon`` to the result.

    ``seed`` fixes the split and the initial weights; DP-SGD's batch sampling and noise come from
    a cryptographically seeded source unless ``noise_seed`` is given (for reproducible teaching).
    """
    train = _dpsgd(l2_norm_clip, batch_size, epochs, learning_rate, momentum, delta, noise_seed)

    def fit(model, members):
        return {"epsilon": train(model, *members, noise_multiplier=noise_multiplier).epsilon[-1]}

    return membership_experiment(ds, num_members, fit, model_name, small, delta, seed)


def _dpsgd(l2_norm_clip, batch_size, epochs, learning_rate, momentum, delta, noise_seed):
    """``train_dpsgd`` with everything but the model, data and noise multiplier fixed."""
    from labkit.dp import train_dpsgd

    return functools.partial(
        train_dpsgd,
        l2_norm_clip=l2_norm_clip,
        batch_size=batch_size,
        epochs=epochs,
        learning_rate=learning_rate,
        momentum=momentum,
        delta=delta,
        seed=noise_seed,
    )


def federated_membership_experiment(
    ds,
    aggregator: Aggregator,
    num_members: int = 500,
    num_clients: int = 10,
    num_rounds: int = 40,
    local_epochs: int = 5,
    batch_size: int = 10,
    learning_rate: float = 0.1,
    model_name: str = "2nn",
    small: bool = True,
    seed: int = 0,
) -> dict:
    """FedAvg (every client, every round) on ``num_members`` examples split IID; audited.

    Few examples, many local epochs: a setting where a plain model memorises its members.
    Adds ``history`` (the ``FLHistory``) to the result.
    """
    from labkit.data import partition_iid
    from labkit.fl import client_datasets, fedavg

    if num_clients > num_members:
        raise ParameterError("num_clients", num_clients, f"at most num_members={num_members}")

    def fit(model, members):
        clients = client_datasets(*members, partition_iid(members[1], num_clients, seed=seed))
        history = fedavg(
            model,
            clients,
            num_rounds,
            client_fraction=1.0,
            local_epochs=local_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            aggregator=aggregator,
            seed=seed,
        )
        return {"history": history}

    return membership_experiment(ds, num_members, fit, model_name, small, seed=seed)


def privacy_utility_sweep(
    ds,
    epsilons: list[float],
    model_fn: Callable,
    epochs: int,
    batch_size: int,
    l2_norm_clip: float,
    learning_rate: float,
    momentum: float = 0.9,
    delta: float = 1e-5,
    seed: int = 0,
    noise_seed: int | None = None,
) -> list[dict]:
    """Train one DP-SGD model per target epsilon (noise from dp-accounting); return the rows.

    ``seed`` fixes the initial weights; sampling and noise are cryptographically seeded unless
    ``noise_seed`` is given.
    """
    import tensorflow as tf

    from labkit.dp import dpsgd_noise_multiplier
    from labkit.models import evaluate

    train = _dpsgd(l2_norm_clip, batch_size, epochs, learning_rate, momentum, delta, noise_seed)
    rows = []
    for target in epsilons:
        sigma = dpsgd_noise_multiplier(target, batch_size, len(ds.x_train), epochs, delta)
        tf.keras.utils.set_random_seed(seed)
        model = model_fn()
        hist = train(model, ds.x_train, ds.y_train, noise_multiplier=sigma)
        rows.append(
            {
                "target_epsilon": target,
                "epsilon": hist.epsilon[-1],
                "noise_multiplier": sigma,
                "test_accuracy": evaluate(model, ds.x_test, ds.y_test)[1],
            }
        )
    return rows


__getattr__ = lazy_submodules(__name__, {"text", "audit"})  # chapter 08's part of this concern
