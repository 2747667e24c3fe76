"""The model-service chapter's experiments: pretrain in public, fine-tune with DP, audit by
extraction, release the query log privately.

* ``pretrain``: a char GRU trained non-privately on the public plays.
* ``fine_tune``: one of ``MODES`` on the private plays with canaries: ``'full'`` (DP-SGD on every
  weight of the pretrained model), ``'head'`` (DP-SGD on the output layer only, the rest frozen),
  ``'scratch'`` (DP-SGD from a fresh model), ``'nonprivate'`` (Adam on every weight). Measures
  private-domain perplexity and every canary's exposure.
* ``query_log_recall``: top-k recall of the query log's popular phrases, central vs local DP.
"""

from __future__ import annotations

import numpy as np

from labkit import models
from labkit._checks import ParameterError, check_choice, check_int
from labkit.attacks import exposure as ex
from labkit.config import make_rng, progress

__all__ = [
    "MODES",
    "pretrain",
    "copy_model",
    "fine_tune",
    "measure",
    "service_query_log",
    "query_log_recall",
]

MODES = ("full", "head", "scratch", "nonprivate")


def _adam_epochs(model, x, y, epochs, batch_size, learning_rate, seed, desc):
    import tensorflow as tf

    model.compile(
        tf.keras.optimizers.Adam(learning_rate),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = make_rng(seed)
    for _ in progress(range(epochs), desc=desc):
        order = rng.permutation(len(x))
        model.fit(x[order], y[order], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return model


def pretrain(corpora: dict, units: int, epochs: int, batch_size: int = 64,
             learning_rate: float = 2e-3, seed: int = 0):  # fmt: skip
    """Return a char GRU trained (non-privately: the text is public) on ``corpora['public']``."""
    epochs = check_int("epochs", epochs, 1)
    model = models.build_char_lm(corpora["seq_len"], units=units, seed=seed)
    x, y = corpora["public"]
    return _adam_epochs(model, x, y, epochs, batch_size, learning_rate, seed, "pretraining")


def copy_model(model):
    """Return a new model with ``model``'s architecture and weights (all layers trainable)."""
    import tensorflow as tf

    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def measure(model, corpora: dict) -> dict:
    """Return private-domain perplexity and each canary's exact exposure and rank."""
    out = [
        ex.exposure(model, sp, s)
        for sp, s in zip(corpora["spaces"], corpora["secrets"], strict=True)
    ]
    return {
        "perplexity": models.perplexity(model, *corpora["heldout"]),
        "exposure": [o["exposure"] for o in out],
        "rank": [o["rank"] for o in out],
    }


def fine_tune(
    mode: str,
    corpora: dict,
    pretrained=None,
    *,
    units: int | None = None,
    epochs: int = 3,
    noise_multiplier: float | None = None,
    l2_norm_clip: float = 1.0,
    batch_size: int = 256,
    dp_learning_rate: float = 1.0,
    learning_rate: float = 2e-3,
    nonprivate_batch_size: int = 64,
    delta: float = 1e-5,
    seed: int = 0,
) -> dict:
    """Fine-tune (or train from scratch) on the private chunks; return the model and metrics.

    ``mode``: see ``MODES``. The DP modes run ``labkit.dp.train_dpsgd(method='ghost-recurrent')``
    with Poisson batches of expected size ``batch_size``, SGD with momentum 0.9 at
    ``dp_learning_rate`` and ``noise_multiplier`` (required); ``'head'`` freezes the embedding
    and GRU (``trainable=False``; the trainer updates only trainable weights). The unit of
    privacy is one chunk of private text. ``seed`` fixes batches and noise (teaching).

    Returns ``{"model", "epsilon" (inf without DP), "perplexity", "exposure", "rank",
    "trainable_params"}``.
    """
    mode = check_choice("mode", mode, MODES)
    epochs = check_int("epochs", epochs, 1)
    if mode in ("full", "head", "nonprivate") and pretrained is None:
        raise ParameterError("pretrained", pretrained, f"a pretrained char LM for mode {mode!r}")
    if mode != "nonprivate" and noise_multiplier is None:
        raise ParameterError("noise_multiplier", None, f"a number >= 0 for DP mode {mode!r}")
    x, y = corpora["private"]
    if mode == "scratch":
        units = int(pretrained.layers[1].units) if units is None and pretrained else units
        model = models.build_char_lm(corpora["seq_len"], units=check_int("units", units, 1),
                                     seed=seed)  # fmt: skip
    else:
        model = copy_model(pretrained)
    if mode == "head":
        for layer in model.layers[:-1]:
            layer.trainable = False
    epsilon = float("inf")
    if mode == "nonprivate":
        _adam_epochs(model, x, y, epochs, nonprivate_batch_size, learning_rate, seed, "fine-tuning")
    else:
        from labkit.dp import train_dpsgd

        history = train_dpsgd(
            model,
            x,
            y,
            l2_norm_clip=l2_norm_clip,
            noise_multiplier=noise_multiplier,
            batch_size=batch_size,
            epochs=epochs,
            learning_rate=dp_learning_rate,
            momentum=0.9,
            delta=delta,
            method="ghost-recurrent",
            seed=seed,
        )
        epsilon = history.epsilon[-1]
    out = measure(model, corpora)
    out.update(
        model=model,
        epsilon=epsilon,
        trainable_params=int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
    )
    return out


def service_query_log(plays=None, min_public_users: int = 2):
    """Return ``(users, candidates)``: the query log of ``plays`` (default: every play that is
    not public), one user per line, and the phrases at least ``min_public_users`` lines of the
    public plays start with (what a local-DP server can enumerate without seeing the log)."""
    from collections import Counter

    from labkit.data import corpora, text

    if plays is None:
        plays = [p for p in text.list_plays() if p not in corpora.PUBLIC_PLAYS]
    users = corpora.query_log(plays, unit="line")
    public = Counter(u[0] for u in corpora.query_log(list(corpora.PUBLIC_PLAYS), unit="line"))
    return users, sorted(q for q, c in public.items() if c >= min_public_users)


def query_log_recall(
    users,
    epsilons,
    k: int = 10,
    max_partitions: int = 4,
    delta: float = 1e-5,
    candidates=None,
    seeds=(0,),
) -> list[dict]:
    """Return rows {method, epsilon, seed, recall, released} for central and local DP.

    Central: ``private_partition_selection`` (Laplace, each user contributing up to
    ``max_partitions`` distinct phrases), ranked by noisy count. Local: OLH, each user reporting
    one of its phrases, the server estimating the counts of ``candidates`` (default: every phrase
    of the log, the most a server could know; pass public phrases for an honest unknown domain).
    """
    from labkit.dp import partition as pa

    k = check_int("k", k, 1)
    if candidates is None:
        candidates = sorted({q for u in users for q in u})
    rows = []
    for seed in seeds:
        for eps in epsilons:
            rel = pa.private_partition_selection(users, eps, delta, max_partitions, seed=seed)
            rows.append({"method": "central", "epsilon": float(eps), "seed": int(seed),
                         "recall": pa.top_k_recall(rel["counts"], users, k),
                         "released": len(rel["counts"])})  # fmt: skip
            top = pa.local_top_k(users, candidates, k, eps, seed=seed)
            rows.append({"method": "local", "epsilon": float(eps), "seed": int(seed),
                         "recall": pa.top_k_recall(top, users, k), "released": k})  # fmt: skip
    return rows
