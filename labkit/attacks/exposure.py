"""Canary exposure (Carlini et al. 2019, "The Secret Sharer"): does a language model memorise?

A canary is a fixed prefix plus a secret drawn from a candidate space R ("my pin is " + 5 digits,
|R| = 10^5). Its log-perplexity under the model is ``-sum log2 P(x_i | x_<i)``; its rank is its
position when every candidate in R is sorted by log-perplexity (1 = the model's favourite) and

    exposure = log2 |R| - log2 rank,

from 0 (the canary is no likelier than a random candidate would be: log2 of the median rank is
log2 |R| - 1) up to log2 |R| (the model prefers it to every other candidate). Ties count in the
canary's favour (rank = 1 + the number of candidates strictly below it).

``exposure`` enumerates R exactly: the candidates share the prefix, so the recurrent state after
the prefix is computed once and the secret is expanded as a tree, one step per level (about
|R| / (|alphabet| - 1) recurrent steps in all, not |R| x the canary's length). For spaces too
large to enumerate, ``sampled_exposure`` estimates it from a random sample, either by the rank in
the sample or, as Carlini et al. do, from a skew-normal fitted to the sample's log-perplexities.
``complete_secret`` is the extraction attack: beam search for the likeliest secret.
"""

from __future__ import annotations

import math

import numpy as np

from labkit._checks import check_choice, check_finite_array, check_float, check_int
from labkit.config import make_rng

# CanarySpace lives with the text data (labkit.data builds corpora with canaries planted);
# it is re-exported here, where the exposure attack reads it.
from labkit.data.text import CanarySpace, TextError, check_canary, encode
from labkit.models import char_lm_layers, sequence_log_probs

__all__ = [
    "ESTIMATORS",
    "ExposureError",
    "CanarySpace",
    "log_perplexity",
    "candidate_log_perplexities",
    "exposure_from_log_perplexities",
    "exposure",
    "chance_exposure",
    "sampled_log_perplexities",
    "sampled_exposure",
    "complete_secret",
]

ESTIMATORS = ("rank", "skewnorm")


class ExposureError(TextError):
    """Bad exposure input: a sample larger than the candidate space, a secret outside it."""


def _check_space(space) -> CanarySpace:
    if not isinstance(space, CanarySpace):
        raise ExposureError("space", space, "a CanarySpace")
    return space


def _context(model) -> int:
    """Return the model's context length (seq_len); refuse what is not a character LM."""
    try:
        char_lm_layers(model)
        return int(model.input_shape[1])
    except (AttributeError, TypeError, IndexError) as err:
        raise ExposureError(
            "model", type(model).__name__, "a character LM (build_char_lm)"
        ) from err


def _check_fits(model, space: CanarySpace) -> None:
    _check_space(space)
    check_canary(space.prefix + space.alphabet[0] * space.length, _context(model))
    check_canary(space.alphabet, 10**9)  # every alphabet character must be in the vocabulary


def log_perplexity(model, text: str) -> float:
    """Return ``-sum_{i>=2} log2 P(x_i | x_<i)`` of ``text`` (the first character is given)."""
    check_canary(text, _context(model))
    if len(text) < 2:  # nothing to score after the given first character
        raise ExposureError("text", text, "at least 2 characters")
    codes = encode(text)
    logp = sequence_log_probs(model, codes[None, :-1])[0]
    return float(-logp[np.arange(len(codes) - 1), codes[1:]].sum())


def _prefix_state(model, space: CanarySpace):
    codes = encode(space.prefix)
    logp, state = sequence_log_probs(model, codes[None], return_state=True)
    return logp[0, -1], state


def candidate_log_perplexities(model, space: CanarySpace, batch_size: int = 65_536) -> np.ndarray:
    """Return the secret part of the log-perplexity of every candidate, in enumeration order.

    Entry i is ``-sum log2 P(secret_i[j] | prefix, secret_i[:j])``; the prefix's own term is the
    same for every candidate and left out (it does not change ranks).
    """
    import tensorflow as tf

    _check_fits(model, space)
    codes = encode(space.alphabet)
    a = len(codes)
    dist, state = _prefix_state(model, space)
    lp = -dist[codes]  # level 1: (a,)
    for _ in range(1, space.length):
        # feed each node's last character from its parent's state; children in order
        parents = len(lp) // a
        state = [tf.repeat(s, a, axis=0) for s in state]
        chars = np.tile(codes, parents)[:, None]
        rows, new_state = [], []
        for s in range(0, len(chars), batch_size):
            part, st = sequence_log_probs(
                model, chars[s : s + batch_size], [x[s : s + batch_size] for x in state], True
            )
            rows.append(part[:, 0])
            new_state.append(st)
        dists = np.concatenate(rows)
        state = [tf.concat([st[i] for st in new_state], axis=0) for i in range(len(state))]
        lp = (lp[:, None] - dists[:, codes]).reshape(-1)
    return lp


def exposure_from_log_perplexities(canary: float, candidates) -> float:
    """Return log2 |R| - log2 rank, rank = 1 + #(candidates strictly below ``canary``).

    ``candidates`` is the whole space R, the canary included.
    """
    canary = check_float("canary", canary)
    cand = check_finite_array("candidates", candidates).ravel()
    if cand.size == 0:
        raise ExposureError("candidates", cand, "the whole candidate space (>= 1 value)")
    if canary > cand.max():  # R holds the canary: above them all, rank |R| + 1, exposure < 0
        raise ExposureError(
            "canary", canary, f"<= the largest candidate {cand.max():g} (R holds the canary)"
        )
    rank = 1 + int(np.sum(cand < canary))
    return math.log2(cand.size) - math.log2(rank)


def chance_exposure(num_canaries: int = 1, level: float = 0.01) -> float:
    """Return the exposure that unmemorised canaries exceed with probability at most ``level``.

    A canary the model has not memorised is ranked like any candidate: its rank is uniform on
    1..|R|, so P(exposure >= x) = P(rank <= |R| 2^-x) <= 2^-x, whatever |R|. Over
    ``num_canaries`` canaries (a union bound) the threshold is log2(num_canaries / level):
    exposure above it is evidence of memorisation at that level, below it is what chance gives.
    """
    num_canaries = check_int("num_canaries", num_canaries, 1)
    level = check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    return math.log2(num_canaries) - math.log2(level)  # log2 of an int never overflows


def exposure(model, space: CanarySpace, secret: str) -> dict:
    """Return the canary's exact exposure, rank and log-perplexity (the whole space scored)."""
    index = _check_space(space).index(secret)  # before the (long) scoring
    lps = candidate_log_perplexities(model, space)
    mine = float(lps[index])
    value = exposure_from_log_perplexities(mine, lps)
    return {
        "exposure": value,
        "rank": int(1 + np.sum(lps < mine)),
        "space": space.size,
        "log_perplexity": mine,
        "best": space.secret(int(np.argmin(lps))),
    }


def sampled_log_perplexities(model, space: CanarySpace, secrets: list[str]) -> np.ndarray:
    """Return the secret part of the log-perplexity of each of ``secrets`` (batched)."""
    import tensorflow as tf

    _check_fits(model, space)
    if isinstance(secrets, str) or len(secrets) == 0:
        raise ExposureError("secrets", secrets, "a non-empty list of secrets")
    for s in secrets:
        space.index(s)  # each secret must be in the space
    dist, state = _prefix_state(model, space)
    codes = np.stack([encode(s) for s in secrets])  # (n, length)
    lp = -dist[codes[:, 0]]
    if space.length > 1:
        start = [tf.repeat(s, len(secrets), axis=0) for s in state]
        logp = sequence_log_probs(model, codes[:, :-1], start)  # rows give chars 2..length
        n, steps = codes.shape[0], space.length - 1
        lp = lp - logp[np.arange(n)[:, None], np.arange(steps)[None], codes[:, 1:]].sum(axis=1)
    return lp


def sampled_exposure(
    model,
    space: CanarySpace,
    secret: str,
    num_samples: int,
    estimator: str = "rank",
    seed=0,
) -> float:
    """Estimate the exposure from ``num_samples`` random other candidates.

    ``'rank'``: -log2((1 + #sample below the canary) / (num_samples + 1)); it equals the exact
    exposure when the sample is all of R but the canary, and cannot exceed log2(num_samples + 1).
    ``'skewnorm'``: -log2 F(canary) with F a skew-normal fitted to the sample (Carlini et al.
    2019, Sec. 4.3): it extrapolates beyond the sample, with the fit's error.
    """
    check_choice("estimator", estimator, ESTIMATORS)
    _check_space(space)
    num_samples = check_int("num_samples", num_samples, 1)
    if num_samples > space.size - 1:
        raise ExposureError(
            "num_samples", num_samples, f"<= {space.size - 1}, the other candidates of |R|",
            f"num_samples={num_samples} is larger than the candidate space allows: "
            f"|R|={space.size}; use exact exposure()",
        )  # fmt: skip
    rng = make_rng(seed)
    me = space.index(secret)
    others: set[int] = set()
    while len(others) < num_samples:  # distinct, uniform, never the canary
        draw = rng.integers(0, space.size, size=num_samples - len(others))
        others.update(int(i) for i in draw if i != me)
    picks = [space.secret(i) for i in sorted(others)][:num_samples]
    lps = sampled_log_perplexities(model, space, [secret, *picks])
    mine, sample = lps[0], lps[1:]
    if estimator == "rank":
        return -math.log2((1 + np.sum(sample < mine)) / (num_samples + 1))
    from scipy import stats

    params = stats.skewnorm.fit(sample)
    return float(-stats.skewnorm.logcdf(mine, *params) / math.log(2.0))


def complete_secret(model, space: CanarySpace, beam_width: int = 1) -> list[tuple[str, float]]:
    """Return the ``beam_width`` likeliest secrets after the prefix (beam search), best first.

    ``beam_width=1`` is greedy decoding: what the model types after "my pin is ". Each entry is
    ``(secret, log-perplexity of the secret)``.
    """
    import tensorflow as tf

    beam_width = check_int("beam_width", beam_width, 1)
    _check_fits(model, space)
    codes = encode(space.alphabet)
    dist, state = _prefix_state(model, space)
    beams = [("", 0.0)]
    dists = dist[None]
    for level in range(space.length):
        scored = [
            (b + space.alphabet[j], lp - float(dists[i, codes[j]]), i)
            for i, (b, lp) in enumerate(beams)
            for j in range(len(codes))
        ]
        scored.sort(key=lambda t: t[1])
        keep = scored[:beam_width]
        beams = [(s, lp) for s, lp, _ in keep]
        if level == space.length - 1:
            break
        parent = np.array([i for _, _, i in keep])
        state = [tf.gather(s, parent) for s in state]
        chars = encode("".join(s[-1] for s, _ in beams))[:, None]
        logp, state = sequence_log_probs(model, chars, state, True)
        dists = logp[:, 0]
    return beams
