"""Valid empirical lower bounds on epsilon: the one-run canary audit and a held-out threshold.

Two ways to turn a membership attack into a lower bound on epsilon that holds at a stated
confidence:

- ``one_run_epsilon`` / ``canary_audit``: the one-run audit of Steinke, Nasr & Jagielski (2023,
  "Privacy Auditing with One (1) Training Run"). ``m`` canaries are each inserted into the training
  set independently with probability 1/2; after one training run the auditor guesses "in" for
  its ``k`` highest-scoring canaries and "out" for its ``k`` lowest (``k`` fixed in advance) and
  counts the correct guesses. Under (epsilon, delta)-DP that count is stochastically dominated by
  Binomial(r, e^eps / (1 + e^eps)) up to a delta term (their Theorem 3.1 / Appendix D), so a
  count too high for that binomial rejects epsilon. Rigorous from a single training run.
- ``heldout_epsilon``: the two-inequality ROC bound (Kairouz et al. 2015; Jagielski et al. 2020)
  with the threshold and the direction of the test chosen on one half of the scores and the
  Clopper-Pearson rates measured on the other half. Choosing the threshold on the scores it then
  bounds (what labkit's ``empirical_epsilon`` did before) voids the confidence: the maximum over
  thousands of thresholds of a 95% bound is not a 95% bound. The per-example rates are
  independent trials only when every score comes from its own training run; on one run's
  scores this bound is the usual heuristic, and the canary audit is the rigorous one.

Written here because no maintained Python library ships either for Keras (the reference code is
the paper's Appendix D; this is a reimplementation with input checks and a vectorised tail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labkit._checks import ParameterError, check_finite_array, check_float, check_int

__all__ = [
    "one_run_p_value",
    "one_run_epsilon",
    "CanaryAudit",
    "canary_audit",
    "heldout_epsilon",
]


def _check_counts(num_canaries, num_guesses, num_correct):
    m = check_int("num_canaries", num_canaries, 1)
    r = check_int("num_guesses", num_guesses, 0, m)
    v = check_int("num_correct", num_correct, 0, r)
    return m, r, v


def one_run_p_value(
    num_canaries: int, num_guesses: int, num_correct: int, epsilon: float, delta: float = 0.0
) -> float:
    """Return P[at least ``num_correct`` of ``num_guesses`` right] under (epsilon, delta)-DP.

    Steinke, Nasr & Jagielski (2023), Theorem 3.1: with ``num_canaries`` canaries each included
    with probability 1/2, the p-value is P[Binomial(r, q) >= v] + 2 m delta max_i P[v > B >= v-i]/i
    with q = e^eps / (1 + e^eps), the accuracy of eps-DP randomised response.
    """
    from scipy.stats import binom

    m, r, v = _check_counts(num_canaries, num_guesses, num_correct)
    epsilon = check_float("epsilon", epsilon, 0.0)
    delta = check_float("delta", delta, 0.0, 1.0)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, q))  # P[B >= v]
    if delta == 0.0 or v == 0:
        return min(1.0, tail)
    # P[v > B >= v - i] for i = 1..v, divided by i; the worst i enters the delta term.
    below = binom.pmf(np.arange(v - 1, -1, -1), r, q)
    alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, tail + 2.0 * m * delta * alpha)


def one_run_epsilon(
    num_canaries: int,
    num_guesses: int,
    num_correct: int,
    delta: float = 0.0,
    confidence: float = 0.95,
    max_epsilon: float = 30.0,
) -> float:
    """Return the largest epsilon rejected at ``confidence`` by the count of correct guesses.

    The training run is not (eps, delta)-DP for any eps below the returned value, with
    probability at least ``confidence`` over the canaries' inclusion and the training noise.
    0 when the guesses are no better than chance could explain.
    """
    m, r, v = _check_counts(num_canaries, num_guesses, num_correct)
    confidence = check_float("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    alpha = 1.0 - confidence
    if one_run_p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    low, high = 0.0, float(max_epsilon)
    if one_run_p_value(m, r, v, high, delta) < alpha:
        return high
    for _ in range(60):  # bisection: the p-value grows with epsilon
        mid = (low + high) / 2
        if one_run_p_value(m, r, v, mid, delta) < alpha:
            low = mid
        else:
            high = mid
    return low


@dataclass(frozen=True)
class CanaryAudit:
    """Outcome of a one-run canary audit (Steinke, Nasr & Jagielski 2023)."""

    num_canaries: int
    num_guesses: int
    num_correct: int
    delta: float
    confidence: float
    epsilon_lower_bound: float
    auc: float  # of the canary scores, included vs excluded (0.5 = chance)

    def summary(self) -> str:
        """Return a one-line, fixed-precision summary."""
        return (
            f"{self.num_correct} of {self.num_guesses} guesses right "
            f"({self.num_canaries} canaries, AUC {self.auc:.3f}): epsilon >= "
            f"{self.epsilon_lower_bound:.2f} at {self.confidence:.0%} confidence, "
            f"delta {self.delta:g}"
        )


def canary_audit(
    scores,
    included,
    num_guesses: int,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> CanaryAudit:
    """Guess the ``num_guesses // 2`` top-scoring canaries "in" and as many bottom ones "out".

    Args:
        scores: one membership score per canary (higher: more likely inserted), e.g. minus
            the model's loss on the canary.
        included: booleans, which canaries were inserted (each with probability 1/2, drawn
            independently before training: the theorem needs this).
        num_guesses: how many guesses in all (even, at most the number of canaries); fix it
            before looking at the scores, or the confidence is void.
        delta, confidence: the null hypothesis's delta and the confidence of the bound.
    """
    from labkit.attacks import roc_auc

    scores = check_finite_array("scores", scores).ravel()
    included = np.asarray(included).ravel()
    if included.shape != scores.shape or not np.isin(included, (0, 1)).all():
        raise ParameterError("included", included.shape, f"{scores.size} booleans")
    included = included.astype(bool)
    m = scores.size
    num_guesses = check_int("num_guesses", num_guesses, 2, m)
    if num_guesses % 2:
        raise ParameterError("num_guesses", num_guesses, "an even number (half in, half out)")
    k = num_guesses // 2
    order = np.argsort(-scores, kind="stable")
    correct = int(included[order[:k]].sum() + (~included[order[m - k :]]).sum())
    auc = roc_auc(scores[included], scores[~included]) if 0 < included.sum() < m else 0.5
    bound = one_run_epsilon(m, num_guesses, correct, delta, confidence)
    return CanaryAudit(m, num_guesses, correct, delta, confidence, bound, auc)


def heldout_epsilon(
    member_scores,
    nonmember_scores,
    delta: float = 0.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> float:
    """Return the ROC lower bound on epsilon with the threshold chosen on held-out scores.

    Each class is split at random in two halves: on the first the best threshold and test
    (TPR/FPR or TNR/FNR) are chosen, on the second their Clopper-Pearson rates give the bound
    at ``confidence``. The split is fixed by ``seed`` (it is not a source of privacy noise).
    """
    from labkit.attacks import _clopper_pearson, _epsilon_curves, roc_curve

    pos = check_finite_array("member_scores", member_scores).ravel()
    neg = check_finite_array("nonmember_scores", nonmember_scores).ravel()
    delta = check_float("delta", delta, 0.0, 1.0, high_open=True)
    confidence = check_float("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    for name, s in (("member_scores", pos), ("nonmember_scores", neg)):
        if s.size < 2:
            raise ParameterError(name, s.size, "at least 2 scores (half choose, half bound)")
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(pos), rng.permutation(neg)
    (pos_a, pos_b), (neg_a, neg_b) = np.array_split(pos, 2), np.array_split(neg, 2)
    # Choose on half A: the threshold and test with the largest point estimate (no CI needed).
    _, _, thresholds = roc_curve(pos_a, neg_a)
    *_, curves = _epsilon_curves(pos_a, neg_a, delta, 0.5)
    best_name, best_i, best = "", 0, -np.inf
    for name, eps in curves.items():
        eps = np.where(np.isfinite(eps), eps, -np.inf)
        i = int(np.argmax(eps))
        if eps[i] > best:
            best_name, best_i, best = name, i, float(eps[i])
    if not np.isfinite(best) or best <= 0:
        return 0.0
    t = thresholds[best_i]
    # Bound on half B at that one threshold: TPR low, FPR high, alpha/2 each.
    alpha = 1.0 - confidence
    tp, fp = int(np.sum(pos_b >= t)), int(np.sum(neg_b >= t))
    tpr_lo = float(_clopper_pearson(np.array(tp), pos_b.size, alpha)[0])
    fpr_hi = float(_clopper_pearson(np.array(fp), neg_b.size, alpha)[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        if best_name == "TPR/FPR":
            eps = np.log((tpr_lo - delta) / fpr_hi)
        else:
            eps = np.log((1.0 - fpr_hi - delta) / (1.0 - tpr_lo))
    return float(eps) if np.isfinite(eps) and eps > 0 else 0.0
