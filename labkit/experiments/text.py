"""The language-model chapter's experiments, end to end: data, training, attack, measurement.

* ``canary_experiment``: plant canaries k times in Shakespeare, train a char LM (non-private,
  or DP-SGD with ``noise_multiplier``), measure each canary's exposure per epoch, held-out
  perplexity, and what the model types after each canary's prefix.
* ``federated_text``: the LEAF Shakespeare task with ``labkit.fl.fedavg``, by role or IID,
  optionally with DP-FedAvg; rounds to a target accuracy and the user-level epsilon.
* ``genre_service``: a linear genre classifier served on encrypted features
  (``labkit.he.inference``).
"""

from __future__ import annotations

import time

import numpy as np

from labkit import models
from labkit.attacks import exposure as ex
from labkit.config import make_rng, progress
from labkit.data import text

__all__ = [
    "CANARY_NAMES",
    "canary_corpus",
    "canary_experiment",
    "iid_clients",
    "federated_text",
    "genre_dataset",
    "genre_service",
]

CANARY_NAMES = ("anne", "bill", "cara", "dave", "emma", "fred", "gina", "hugo")


def canary_corpus(
    plays: list[str],
    counts: list[int],
    seq_len: int,
    secret_length: int = 5,
    heldout_fraction: float = 0.1,
    max_chars: int | None = None,
    seed: int = 0,
) -> dict:
    """Return the training chunks with canaries planted, held-out chunks, and the canaries.

    Canary i is ``"<name>'s pin is <secret>"`` with a random secret of ``secret_length`` digits,
    inserted ``counts[i]`` times at random line starts of the training part of the text.
    ``max_chars`` keeps only the start of the plays' text (quick mode).
    """
    if len(counts) > len(CANARY_NAMES):
        raise text.TextError("counts", counts, f"at most {len(CANARY_NAMES)} entries (canaries)")
    roles = text.load_roles(plays)
    corpus = text.role_text(roles)[:max_chars]
    cut = int(len(corpus) * (1.0 - heldout_fraction))
    rng = make_rng(seed)
    spaces, secrets = [], []
    for name in CANARY_NAMES[: len(counts)]:
        space = ex.CanarySpace(f"{name}'s pin is ", length=secret_length)
        spaces.append(space)
        secrets.append(space.secret(int(rng.integers(space.size))))
    canaries = [sp.canary(s) for sp, s in zip(spaces, secrets, strict=True)]
    train_text = text.insert_canaries(corpus[:cut], canaries, counts, seq_len, seed=seed)
    # Chunks overlap by half, so a canary cut by one chunk's edge is whole in the next.
    x, y = text.sequence_chunks(text.encode(train_text), seq_len, stride=seq_len // 2)
    x_ho, y_ho = text.sequence_chunks(text.encode(corpus[cut:]), seq_len)
    return {
        "x": x.astype(np.float32),
        "y": y,
        "x_heldout": x_ho.astype(np.float32),
        "y_heldout": y_ho,
        "spaces": spaces,
        "secrets": secrets,
        "counts": list(counts),
        "num_chars": len(train_text),
    }


def _measure(model, data: dict) -> dict:
    out = [ex.exposure(model, sp, s) for sp, s in zip(data["spaces"], data["secrets"], strict=True)]
    return {
        "exposure": [o["exposure"] for o in out],
        "rank": [o["rank"] for o in out],
        "perplexity": models.perplexity(model, data["x_heldout"], data["y_heldout"]),
    }


def canary_experiment(
    data: dict,
    units: int,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    noise_multiplier: float | None = None,
    l2_norm_clip: float = 1.0,
    dp_learning_rate: float = 1.0,
    delta: float = 1e-5,
    measure_every: int = 1,
    seed: int = 0,
) -> dict:
    """Train a char GRU on ``canary_corpus`` data; measure exposure and perplexity per epoch.

    ``noise_multiplier=None`` trains non-privately with Adam; a number trains with DP-SGD
    (Poisson batches of expected size ``batch_size``, SGD with momentum 0.9 at
    ``dp_learning_rate``) and records epsilon at ``delta`` per epoch; ``seed`` fixes the batches
    and the DP noise too (reproducible teaching; ``train_dpsgd``'s default is OS entropy).
    Returns per-epoch lists (``epochs``, ``exposure`` per canary, ``perplexity``, ``epsilon``,
    ``seconds`` of training only) and the greedy completion of every canary's prefix.
    """
    import tensorflow as tf

    from labkit.dp import train_dpsgd

    seq_len = data["x"].shape[1]
    model = models.build_char_lm(seq_len, units=units, seed=seed)
    log = {"epochs": [], "exposure": [], "perplexity": [], "epsilon": [], "seconds": []}
    elapsed = [0.0]

    def record(epoch: int, epsilon: float) -> None:
        log["seconds"].append(elapsed[0])
        if epoch % measure_every and epoch != epochs:
            return
        m = _measure(model, data)
        log["epochs"].append(epoch)
        log["exposure"].append(m["exposure"])
        log["perplexity"].append(m["perplexity"])
        log["epsilon"].append(epsilon)

    if noise_multiplier is None:
        model.compile(
            tf.keras.optimizers.Adam(learning_rate),
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        rng = make_rng(seed)
        for epoch in progress(range(1, epochs + 1), desc="LM epochs"):
            order = rng.permutation(len(data["x"]))
            start = time.perf_counter()
            model.fit(
                data["x"][order],
                data["y"][order],
                batch_size=batch_size,
                epochs=1,
                verbose=0,
                shuffle=False,
            )
            elapsed[0] += time.perf_counter() - start
            record(epoch, float("inf"))
    else:

        def on_epoch(history) -> None:
            elapsed[0] = history.seconds[-1]
            record(history.epochs[-1], history.epsilon[-1])

        # measuring is outside the timed part: DP seconds count from the history's clock
        train_dpsgd(
            model,
            data["x"],
            data["y"],
            l2_norm_clip=l2_norm_clip,
            noise_multiplier=noise_multiplier,
            batch_size=batch_size,
            epochs=epochs,
            learning_rate=dp_learning_rate,
            momentum=0.9,
            delta=delta,
            method="ghost-recurrent",
            seed=seed,
            on_epoch_end=on_epoch,
        )
    log["completions"] = [
        ex.complete_secret(model, sp, beam_width=1)[0][0] for sp in data["spaces"]
    ]
    log["params"] = int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    log["model"] = model
    return log


def iid_clients(clients: list[tuple[np.ndarray, np.ndarray]], seed: int = 0):
    """Return the same windows shuffled across clients, each client keeping its size."""
    x = np.concatenate([c[0] for c in clients])
    y = np.concatenate([c[1] for c in clients])
    perm = make_rng(seed).permutation(len(x))
    bounds = np.cumsum([0] + [len(c[1]) for c in clients])
    return [(x[perm[a:b]], y[perm[a:b]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def federated_text(
    plays: list[str],
    partition: str,
    num_rounds: int,
    seq_len: int = 40,
    units: int = 128,
    stride: int = 4,
    min_chars: int = 400,
    client_fraction: float = 0.1,
    local_epochs: int = 1,
    batch_size: int = 10,
    learning_rate: float = 1.0,
    target_accuracy: float | None = None,
    num_test: int = 4000,
    eval_every: int = 1,
    aggregator=None,
    seed: int = 0,
) -> dict:
    """Run FedAvg on next-character prediction with one client per speaking role (or IID).

    Roles shorter than ``min_chars`` are dropped (LEAF drops tiny roles too); windows are taken
    every ``stride`` characters. Returns the ``FLHistory``, the number of clients, and the
    user-level epsilon when ``aggregator`` is a ``DPFedAvgAggregator``.
    """
    from labkit import fl
    from labkit.dp import DPFedAvgAggregator

    if partition not in ("role", "iid"):
        raise text.TextError("partition", partition, "one of ('role', 'iid')")
    roles = text.load_roles(plays, min_chars=min_chars)
    clients, (x_te, y_te) = text.role_clients(roles, seq_len, stride=stride)
    if partition == "iid":
        clients = iid_clients(clients, seed)
    pick = make_rng(seed).permutation(len(x_te))[:num_test]
    model = models.build_char_lm(seq_len, units=units, return_sequences=False, seed=seed)
    history = fl.fedavg(
        model,
        clients,
        num_rounds,
        client_fraction=client_fraction,
        local_epochs=local_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        aggregator=aggregator,
        test_data=(x_te[pick], y_te[pick]),
        target_accuracy=target_accuracy,
        eval_every=eval_every,
        seed=seed,
        description=f"FedAvg ({partition})",
    )
    epsilon = None
    if isinstance(aggregator, DPFedAvgAggregator):
        epsilon = aggregator.epsilon(len(clients), delta=1.0 / len(clients) ** 1.1)
    return {"history": history, "num_clients": len(clients), "epsilon": epsilon}


def genre_dataset(plays: list[str] | None = None, chunk: int = 400, seed: int = 0):
    """Return (x_train, y_train, x_test, y_test): character frequencies of ``chunk``-character
    pieces of each role's speech, labelled with the play's Folio genre; split 80/20 by piece."""
    xs, ys = [], []
    for r in text.load_roles(plays, min_chars=chunk):
        t = r.text
        for s in range(0, len(t) - chunk + 1, chunk):
            xs.append(text.char_frequencies(t[s : s + chunk]))
            ys.append(text.genre_of(r.play))
    x, y = np.array(xs), np.array(ys)
    perm = make_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


def genre_service(plays: list[str] | None = None, seed: int = 0):
    """Train the service's linear genre model (logistic regression on standardised features).

    Returns ``(service, x_test, y_test, accuracy)``; the standardisation is folded into the
    weights, so the service scores raw character frequencies.
    """
    from sklearn.linear_model import LogisticRegression

    from labkit.he.inference import LinearService

    x_tr, y_tr, x_te, y_te = genre_dataset(plays, seed=seed)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
    clf = LogisticRegression(max_iter=2000, C=1.0).fit((x_tr - mean) / std, y_tr)
    w = clf.coef_.T / std[:, None]
    b = clf.intercept_ - mean @ w
    service = LinearService(w, b)
    acc = float(np.mean(np.argmax(service.plaintext_scores(x_te), axis=1) == y_te))
    return service, x_te, y_te, acc
