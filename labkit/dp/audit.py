"""Experiments that put DP-SGD next to its non-private twin: privacy-utility sweeps and audits."""

from __future__ import annotations

from labkit.dp.accounting import dpsgd_noise_multiplier
from labkit.dp.dpsgd import train_dpsgd

__all__ = ["privacy_utility_sweep", "dp_membership_experiment"]


def privacy_utility_sweep(
    ds,
    epsilons: list[float],
    model_fn,
    epochs: int,
    batch_size: int,
    l2_norm_clip: float,
    learning_rate: float,
    momentum: float = 0.9,
    delta: float = 1e-5,
    seed: int = 0,
) -> list[dict]:
    """Train one DP-SGD model per target epsilon (noise from dp-accounting); return the rows."""
    import tensorflow as tf

    from labkit.models import evaluate

    rows = []
    for target in epsilons:
        sigma = dpsgd_noise_multiplier(target, batch_size, len(ds.x_train), epochs, delta)
        tf.keras.utils.set_random_seed(seed)
        model = model_fn()
        hist = train_dpsgd(
            model,
            ds.x_train,
            ds.y_train,
            l2_norm_clip=l2_norm_clip,
            noise_multiplier=sigma,
            batch_size=batch_size,
            epochs=epochs,
            learning_rate=learning_rate,
            momentum=momentum,
            delta=delta,
            seed=seed,
        )
        rows.append(
            {
                "target_epsilon": target,
                "epsilon": hist.epsilon[-1],
                "noise_multiplier": sigma,
                "test_accuracy": evaluate(model, ds.x_test, ds.y_test)[1],
            }
        )
    return rows


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
) -> dict:
    """Train with DP-SGD on ``num_members`` examples and audit them against as many others.

    Members and non-members are the same random split as ``memorisation_experiment`` with the
    same seed, so the two audits compare like with like.
    """
    from labkit.attacks import audit_model, member_split
    from labkit.models import build_model, evaluate

    members, nonmembers = member_split(ds, num_members, seed)
    model = build_model(model_name, ds.input_shape, ds.num_classes, small=small, seed=seed)
    hist = train_dpsgd(
        model,
        *members,
        l2_norm_clip=l2_norm_clip,
        noise_multiplier=noise_multiplier,
        batch_size=batch_size,
        epochs=epochs,
        learning_rate=learning_rate,
        momentum=momentum,
        delta=delta,
        seed=seed,
    )
    audit, member_losses, nonmember_losses = audit_model(model, members, nonmembers, delta=delta)
    return {
        "model": model,
        "audit": audit,
        "epsilon": hist.epsilon[-1],
        "member_losses": member_losses,
        "nonmember_losses": nonmember_losses,
        "train_accuracy": evaluate(model, *members)[1],
        "test_accuracy": evaluate(model, ds.x_test, ds.y_test)[1],
    }
