"""Training-data extraction (Carlini et al. 2021, "Extracting Training Data from Large Language
Models"), at the scale of a character model.

The attack needs only sampling access: (1) draw many generations from the model, (2) rank them
by how much likelier the model finds them than a reference does, (3) keep the top ``top_k`` and
check them against the training data. Carlini et al. rank by the ratio of the model's
log-perplexity to the zlib entropy of the text (generic, repetitive text compresses well and is
likely under any model; memorised text is likely only under the trained model), or by the
difference to a smaller reference model; here the reference can be zlib or the pretrained-only
model (what the fine-tuning changed). A generation is one generated line.

Canary exposure (``labkit.attacks.exposure``) asks "how far up the candidate list is the
secret?"; extraction asks "does the secret come out, verbatim, when an attacker who does not know
its prefix samples the model?". Written here because no maintained library ships the attack for
Keras models; the sampling and scoring use the char LM's own weights
(``labkit.models.sequence_log_probs``).
"""

from __future__ import annotations

import zlib

import numpy as np

from labkit._checks import ParameterError, check_float, check_int
from labkit.config import make_rng, progress
from labkit.data.text import VOCAB, decode, encode
from labkit.models import sequence_log_probs

__all__ = [
    "REFERENCES",
    "sample_generations",
    "log_perplexities",
    "zlib_entropy",
    "rank_generations",
    "extracted",
    "extraction_attack",
]

REFERENCES = ("zlib", "model", "none")


def sample_generations(
    model,
    num_samples: int,
    length: int,
    prompt: str = "\n",
    temperature: float = 1.0,
    batch_size: int = 512,
    seed=None,
) -> list[str]:
    """Return ``num_samples`` texts of ``length`` characters sampled after ``prompt``.

    Characters are drawn from the model's softmax at ``temperature`` (1: the model's own
    distribution); the character code 0 (outside the vocabulary) is never drawn.
    """
    import tensorflow as tf

    num_samples = check_int("num_samples", num_samples, 1)
    length = check_int("length", length, 1)
    temperature = check_float("temperature", temperature, 0.0, low_open=True)
    batch_size = check_int("batch_size", batch_size, 1)
    if not prompt or any(c not in VOCAB[1:] for c in prompt):
        raise ParameterError("prompt", prompt, "a non-empty string of VOCAB characters")
    rng = make_rng(seed)
    start = encode(prompt)
    out = []
    for s in progress(range(0, num_samples, batch_size), desc="sampling"):
        n = min(batch_size, num_samples - s)
        logp, state = sequence_log_probs(model, np.tile(start, (n, 1)), return_state=True)
        dist = logp[:, -1]
        codes = np.zeros((n, length), np.int32)
        for t in range(length):
            z = dist * np.log(2.0) / temperature
            z[:, 0] = -np.inf
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            # inverse-CDF sampling, one uniform per row
            c = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
            codes[:, t] = np.minimum(c, len(VOCAB) - 1)
            logp, state = sequence_log_probs(
                model, codes[:, t : t + 1], [tf.identity(x) for x in state], True
            )
            dist = logp[:, 0]
        out += [decode(row) for row in codes]
    return out


def log_perplexities(model, texts: list[str], context: str = "\n", batch_size: int = 512):
    """Return the log-perplexity in bits, ``-sum log2 P(char | context, earlier chars)``, of
    each text, each scored after ``context`` (a generated line follows a newline)."""
    if not texts:
        raise ParameterError("texts", texts, "a non-empty list of strings")
    ctx = encode(context)
    out = np.zeros(len(texts))
    for s in range(0, len(texts), batch_size):
        part = texts[s : s + batch_size]
        width = max(len(t) for t in part)
        codes = np.zeros((len(part), len(ctx) + width), np.int32)
        mask = np.zeros((len(part), width))
        for i, t in enumerate(part):
            codes[i, : len(ctx)] = ctx
            codes[i, len(ctx) : len(ctx) + len(t)] = encode(t)
            mask[i, : len(t)] = 1.0
        logp = sequence_log_probs(model, codes[:, :-1])[:, len(ctx) - 1 :]
        target = codes[:, len(ctx) :]
        picked = np.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
        out[s : s + len(part)] = -(picked * mask).sum(axis=1)
    return out


def zlib_entropy(text: str) -> float:
    """Return the zlib-compressed size of ``text`` in bits (Carlini et al.'s reference)."""
    return 8.0 * len(zlib.compress(text.encode("utf-8"), 9))


def rank_generations(model, texts: list[str], reference="zlib") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(order, scores)``: ``texts`` sorted most suspicious first, by score.

    ``reference='zlib'``: score = model log-perplexity / zlib entropy (low: the model finds it
    far likelier than its compressibility suggests); a Keras char LM (e.g. the pretrained-only
    model): score = model log-perplexity - reference log-perplexity (low: fine-tuning made it
    likelier); ``'none'``: the model's log-perplexity per character alone.
    """
    lp = log_perplexities(model, texts)
    if isinstance(reference, str):
        if reference not in REFERENCES or reference == "model":
            raise ParameterError("reference", reference, "'zlib', 'none' or a char LM")
        if reference == "zlib":
            scores = lp / np.array([zlib_entropy(t) for t in texts])
        else:
            scores = lp / np.array([max(len(t), 1) for t in texts])
    else:
        scores = lp - log_perplexities(reference, texts)
    return np.argsort(scores, kind="stable"), scores


def extracted(candidates: list[str], targets: list[str]) -> list[str]:
    """Return the ``targets`` that occur verbatim in at least one of ``candidates``."""
    joined = "\n".join(candidates)
    return [t for t in targets if t in joined]


def extraction_attack(
    model,
    targets: dict[str, list[str]],
    num_samples: int = 1000,
    length: int = 120,
    top_k: int = 100,
    reference="zlib",
    min_chars: int = 12,
    temperature: float = 1.0,
    seed=None,
) -> dict:
    """Sample, split into lines, rank, and count which targets appear in the top ``top_k``.

    Args:
        model: the attacked char LM.
        targets: named lists of strings to look for (e.g. ``{"canaries": [...],
            "rare_lines": [...]}``).
        num_samples, length: generations and characters per generation.
        top_k: how many ranked lines the attacker keeps (Carlini et al. keep 100 of 200,000).
        reference: see ``rank_generations``.
        min_chars: generated lines shorter than this are not candidates.
        temperature, seed: of the sampling.

    Returns:
        ``{"num_candidates", "top": the top lines, "found": {name: [targets in top_k]},
        "found_anywhere": {name: [targets in any sampled line]}}``.
    """
    top_k = check_int("top_k", top_k, 1)
    min_chars = check_int("min_chars", min_chars, 1)
    if not isinstance(targets, dict) or not targets:
        raise ParameterError("targets", targets, "a non-empty dict of name -> list of strings")
    samples = sample_generations(model, num_samples, length, temperature=temperature, seed=seed)
    # a line cut by the end of the sample is not a whole generation: drop the last piece
    lines = [ln for s in samples for ln in s.split("\n")[:-1] if len(ln) >= min_chars]
    lines = list(dict.fromkeys(lines))  # duplicates would crowd the top k
    if not lines:
        return {
            "num_candidates": 0,
            "top": [],
            "found": {k: [] for k in targets},
            "found_anywhere": {k: [] for k in targets},
        }
    order, _ = rank_generations(model, lines, reference)
    top = [lines[i] for i in order[:top_k]]
    return {
        "num_candidates": len(lines),
        "top": top,
        "found": {k: extracted(top, v) for k, v in targets.items()},
        "found_anywhere": {k: extracted(lines, v) for k, v in targets.items()},
    }
