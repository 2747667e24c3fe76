"""Attacks that measure leakage: membership inference (here) and gradient leakage (FL chapter).

A language model's memorised secrets (canary exposure, Carlini et al.): ``labkit.attacks.exposure``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labkit._checks import ParameterError, check_finite_array, check_float, check_int
from labkit._lazy import lazy_submodules

__all__ = [
    "roc_curve",
    "roc_auc",
    "tpr_at_fpr",
    "empirical_epsilon",
    "MembershipAudit",
    "loss_threshold_attack",
    "audit_model",
    "output_bias_gradient",
    "infer_labels_from_gradient",
]


def roc_curve(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(fpr, tpr, thresholds)`` for "member if score >= threshold", all thresholds."""
    pos = check_finite_array("member_scores", member_scores).ravel()
    neg = check_finite_array("nonmember_scores", nonmember_scores).ravel()
    for name, scores in (("member_scores", pos), ("nonmember_scores", neg)):
        if scores.size == 0:
            raise ParameterError(name, scores, "non-empty")
    scores = np.concatenate([pos, neg])
    is_member = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    # One point per distinct threshold: ties must move together or the curve cheats.
    last_of_run = np.r_[np.diff(scores) != 0, True]
    tp = np.cumsum(is_member)[last_of_run]
    fp = np.cumsum(1 - is_member)[last_of_run]
    tpr = np.r_[0.0, tp / pos.size]
    fpr = np.r_[0.0, fp / neg.size]
    thresholds = np.r_[np.inf, scores[last_of_run]]
    return fpr, tpr, thresholds


def roc_auc(member_scores, nonmember_scores) -> float:
    """Return the area under the ROC curve (0.5 = guessing, 1 = perfect membership inference)."""
    fpr, tpr, _ = roc_curve(member_scores, nonmember_scores)
    return float(np.trapz(tpr, fpr))


def tpr_at_fpr(member_scores, nonmember_scores, max_fpr: float) -> float:
    """Return the best true-positive rate among thresholds with false-positive rate <= max_fpr."""
    max_fpr = check_float("max_fpr", max_fpr, 0.0, 1.0)
    fpr, tpr, _ = roc_curve(member_scores, nonmember_scores)
    return float(tpr[fpr <= max_fpr].max())


def _clopper_pearson(k: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import beta

    k = np.asarray(k, dtype=np.float64)
    lo = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
    hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def empirical_epsilon(
    member_scores,
    nonmember_scores,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """Return a lower bound on epsilon implied by the attack's ROC curve (Jagielski et al. 2020).

    For an (epsilon, delta)-DP training run every test satisfies TPR <= e^eps * FPR + delta and
    TNR <= e^eps * FNR + delta. The threshold and the test are chosen on half the scores and
    bounded (Clopper-Pearson, TPR low and FPR high) on the other half, so the confidence holds:
    see ``labkit.attacks.audit.heldout_epsilon``. Rigorous when each score comes from an
    independent training run; for one run use the canary audit (``audit.canary_audit``).
    """
    from labkit.attacks.audit import heldout_epsilon

    return heldout_epsilon(member_scores, nonmember_scores, delta, confidence)


def _insample_epsilon(member_scores, nonmember_scores, delta: float, confidence: float) -> float:
    """The largest bound over all thresholds of the same scores: optimistic, not a valid bound."""
    *_, curves = _epsilon_curves(member_scores, nonmember_scores, delta, confidence)
    candidates = np.concatenate(list(curves.values()))
    candidates = candidates[np.isfinite(candidates)]
    return float(max(0.0, candidates.max())) if candidates.size else 0.0


def _epsilon_curves(member_scores, nonmember_scores, delta: float, confidence: float):
    """Return (fpr, tpr, TPR lower bound, FPR upper bound, {test: epsilon per threshold})."""
    delta = check_float("delta", delta, 0.0, 1.0, high_open=True)
    confidence = check_float("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    n_pos, n_neg = np.size(member_scores), np.size(nonmember_scores)
    fpr, tpr, _ = roc_curve(member_scores, nonmember_scores)
    alpha = 1.0 - confidence
    # Two rates per threshold, each bounded at alpha/2 -> Bonferroni over the pair.
    tpr_lo, _ = _clopper_pearson(np.rint(tpr * n_pos), n_pos, alpha / 2)
    _, fpr_hi = _clopper_pearson(np.rint(fpr * n_neg), n_neg, alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        curves = {
            "TPR/FPR": np.log((tpr_lo - delta) / fpr_hi),
            "TNR/FNR": np.log((1.0 - fpr_hi - delta) / (1.0 - tpr_lo)),
        }
    return fpr, tpr, tpr_lo, fpr_hi, curves


@dataclass(frozen=True)
class MembershipAudit:
    """Outcome of a membership-inference attack."""

    auc: float
    advantage: float  # max over thresholds of TPR - FPR (Yeom et al. 2018)
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    epsilon_lower_bound: float
    fpr: np.ndarray
    tpr: np.ndarray

    def summary(self) -> str:
        """Return a one-line, fixed-precision summary (safe for compared notebook cells)."""
        return (
            f"AUC {self.auc:.3f}, advantage {self.advantage:.3f}, "
            f"TPR@1%FPR {self.tpr_at_1pct_fpr:.3f}, TPR@0.1%FPR {self.tpr_at_01pct_fpr:.3f}, "
            f"empirical eps >= {self.epsilon_lower_bound:.2f}"
        )


def loss_threshold_attack(
    member_losses, nonmember_losses, delta: float = 0.0, confidence: float = 0.95
) -> MembershipAudit:
    """Audit membership by thresholding per-example loss: low loss means member (Yeom 2018)."""
    pos = -np.asarray(member_losses, dtype=np.float64)
    neg = -np.asarray(nonmember_losses, dtype=np.float64)
    fpr, tpr, _ = roc_curve(pos, neg)
    return MembershipAudit(
        auc=float(np.trapz(tpr, fpr)),
        advantage=float(np.max(tpr - fpr)),
        tpr_at_1pct_fpr=float(tpr[fpr <= 0.01].max()),
        tpr_at_01pct_fpr=float(tpr[fpr <= 0.001].max()),
        epsilon_lower_bound=empirical_epsilon(pos, neg, delta=delta, confidence=confidence),
        fpr=fpr,
        tpr=tpr,
    )


def audit_model(model, members, nonmembers, delta: float = 0.0):
    """Run the loss-threshold attack on ``model``; members/nonmembers are ``(x, y)`` pairs.

    Returns ``(audit, member_losses, nonmember_losses)``.
    """
    from labkit.models import per_example_loss

    member_losses = per_example_loss(model, *members)
    nonmember_losses = per_example_loss(model, *nonmembers)
    return (
        loss_threshold_attack(member_losses, nonmember_losses, delta=delta),
        member_losses,
        nonmember_losses,
    )


# --- what a shared gradient says about labels (core-concepts chapter) ---


def output_bias_gradient(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the gradient of the mean cross-entropy w.r.t. the last layer's bias."""
    import tensorflow as tf

    bias = model.trainable_variables[-1]
    if len(bias.shape) != 1:
        raise ParameterError("model", model.name, "a model whose last variable is the output bias")
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
        loss = tf.reduce_mean(
            tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )
    return tape.gradient(loss, bias).numpy()


def infer_labels_from_gradient(bias_gradient: np.ndarray) -> np.ndarray:
    """Return the labels present in a batch from its output-bias gradient (Zhao et al. 2020).

    With softmax cross-entropy, d loss / d bias_c = mean_i(p_ic - [y_i = c]): it is negative
    only for labels in the batch (unless the model is already near-certain on them), so a
    server that sees one client's update learns which labels that client holds.
    """
    g = np.asarray(bias_gradient, dtype=np.float64).ravel()
    return np.flatnonzero(g < 0)


# --- gradient leakage (FL chapter) ---
# Why federated learning alone is not private: the gradient a client shares for one example
# determines that example. Two attacks on a shared gradient of the mean cross-entropy:
# - the closed form for a first Dense layer with bias (Phong et al. 2017; Geiping et al. 2020):
#   dL/dW1 = x (dL/db1)^T, so any column j with dL/db1[j] != 0 gives x = dL/dW1[:, j] / dL/db1[j];
# - Deep Leakage from Gradients (Zhu et al. 2019): find x' whose gradient matches the shared one,
#   min_x' sum_l ||grad_l(x', y) - grad_l||^2, with L-BFGS, the label read off the last layer's
#   bias gradient first (iDLG, Zhao et al. 2020). No maintained library ships these for Keras, so
#   they are written here (a few lines on top of TensorFlow's autodiff and SciPy's L-BFGS).

__all__ += [
    "model_gradients",
    "infer_label",
    "reconstruct_input_analytic",
    "LeakageResult",
    "deep_leakage",
]


def _dense_kernel_bias(model):
    import tensorflow as tf

    dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    if not dense or not dense[0].use_bias or not dense[-1].use_bias:
        raise ParameterError("model", model.name, "Dense layers with biases (first and last)")
    return dense


def _check_grads(model, grads) -> list[np.ndarray]:
    grads = [np.asarray(g) for g in grads]
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    if [g.shape for g in grads] != shapes:
        raise ParameterError("grads", [g.shape for g in grads], f"shapes {shapes}")
    return grads


def model_gradients(model, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Return the gradient of the mean cross-entropy on ``(x, y)``: what a FedSGD client sends."""
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != tuple(model.input_shape[1:]) or len(x) == 0:
        want = ", ".join(map(str, model.input_shape[1:]))
        raise ParameterError("x", x, f"shape (n >= 1, {want})")
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(np.asarray(y), logits))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def infer_label(model, grads) -> int:
    """Return the label of a one-example gradient: the only negative last-layer bias entry."""
    grads = _check_grads(model, grads)
    last_bias = _dense_kernel_bias(model)[-1].bias
    index = [v is last_bias for v in model.trainable_variables].index(True)
    # dL/dlogits = softmax - onehot: negative exactly at the true class (iDLG, Zhao et al. 2020).
    return int(np.argmin(grads[index]))


def reconstruct_input_analytic(model, grads) -> np.ndarray:
    """Recover the one input behind a gradient from the first Dense layer (exact for batch 1)."""
    grads = _check_grads(model, grads)
    first = _dense_kernel_bias(model)[0]
    ids = [id(v) for v in model.trainable_variables]
    g_kernel = grads[ids.index(id(first.kernel))]
    g_bias = grads[ids.index(id(first.bias))]
    if not np.any(g_bias != 0):
        raise ParameterError(
            "grads", "a zero first-layer bias gradient", "a nonzero first-layer bias gradient",
            "nothing to divide by",
        )  # fmt: skip
    # Average over the units with the largest |dL/db|, the best-conditioned divisions.
    j = np.argsort(-np.abs(g_bias))[: max(1, int(np.sum(np.abs(g_bias) > 0) // 4))]
    x = np.mean(g_kernel[:, j] / g_bias[j], axis=1)
    return x.reshape(model.input_shape[1:])


@dataclass(frozen=True)
class LeakageResult:
    """What a gradient-inversion attack recovered, and how well its gradient matches."""

    x: np.ndarray
    label: int
    grad_distance: float
    iterations: int


def deep_leakage(
    model,
    grads,
    label: int | None = None,
    max_iter: int = 500,
    seed: int | np.random.Generator | None = 0,
) -> LeakageResult:
    """Reconstruct one training input by matching its gradient with L-BFGS (Zhu et al. 2019)."""
    import tensorflow as tf
    from scipy.optimize import minimize

    from labkit.config import make_rng

    grads = _check_grads(model, grads)
    max_iter = check_int("max_iter", max_iter, 1)
    num_classes = int(model.output_shape[-1])
    label = infer_label(model, grads) if label is None else label
    label = check_int("label", label, 0, num_classes - 1)
    shape = (1, *model.input_shape[1:])
    targets = [tf.constant(g) for g in grads]
    y = tf.constant([label], tf.int64)

    @tf.function
    def objective(flat):
        with tf.GradientTape() as outer:
            outer.watch(flat)
            with tf.GradientTape() as inner:
                logits = model(tf.reshape(flat, shape), training=False)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            dummy = inner.gradient(loss, model.trainable_variables)
            pairs = zip(dummy, targets, strict=True)
            dist = tf.add_n([tf.reduce_sum((d - t) ** 2) for d, t in pairs])
        return dist, outer.gradient(dist, flat)

    def fun(v):
        d, g = objective(tf.constant(v, tf.float32))
        return float(d), g.numpy().astype(np.float64)

    # A grey image plus a little noise; unconstrained L-BFGS as in Zhu et al. (box constraints
    # on the pixels stalled it on corners in our trials).
    start = 0.5 + make_rng(seed).normal(0.0, 0.05, size=int(np.prod(shape)))
    res = minimize(
        fun, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": 1e-12}
    )
    return LeakageResult(
        res.x.reshape(shape[1:]).astype(np.float32), label, float(res.fun), int(res.nit)
    )


# --- chapter 03: which threshold and which of the two bounds give the audit's epsilon ---

__all__ += ["EpsilonWitness", "epsilon_witness"]


@dataclass(frozen=True)
class EpsilonWitness:
    """The best threshold on the scores themselves: its rates, their confidence limits, the value.

    Chosen on the same scores it is evaluated on, so ``epsilon`` is optimistic (the maximum of
    many 95% bounds is not a 95% bound): it shows how the formula works, while
    ``empirical_epsilon`` (held-out threshold) and ``audit.canary_audit`` give valid bounds.

    ``bound`` is ``"TPR/FPR"`` for eps >= ln((TPR_low - delta) / FPR_high) or ``"TNR/FNR"`` for
    eps >= ln((1 - delta - FPR_high) / (1 - TPR_low)) (the test read the other way round:
    "non-member if the score is below the threshold"); ``"none"`` when no threshold gives eps > 0.
    """

    bound: str
    tpr: float
    fpr: float
    tpr_low: float
    fpr_high: float
    delta: float
    epsilon: float

    def summary(self) -> str:
        """Return the formula with the witness's numbers filled in."""
        if self.bound == "TPR/FPR":
            formula = f"ln((TPR_low - delta) / FPR_high) = ln(({self.tpr_low:.4f} - delta) / "
            formula += f"{self.fpr_high:.4f})"
        elif self.bound == "TNR/FNR":
            formula = f"ln((1 - delta - FPR_high) / (1 - TPR_low)) = ln({1 - self.fpr_high:.4f} / "
            formula += f"{1 - self.tpr_low:.4f})"
        else:
            return "no threshold gives a positive bound: eps >= 0"
        return (
            f"at TPR {self.tpr:.4f}, FPR {self.fpr:.4f}: {formula} = {self.epsilon:.2f} "
            f"({self.bound} bound)"
        )


def epsilon_witness(
    member_scores, nonmember_scores, delta: float = 0.0, confidence: float = 0.95
) -> EpsilonWitness:
    """Return the in-sample best threshold, its rates and value (Clopper-Pearson at
    ``(1 - confidence) / 4`` per rate): a worked example of the formula, not a valid bound.
    """
    bound = _insample_epsilon(member_scores, nonmember_scores, delta, confidence)
    fpr, tpr, tpr_lo, fpr_hi, both = _epsilon_curves(
        member_scores, nonmember_scores, delta, confidence
    )
    best = ("none", 0, 0.0)
    for name, eps in both.items():
        eps = np.where(np.isfinite(eps), eps, -np.inf)
        i = int(np.argmax(eps))
        if eps[i] > best[2]:
            best = (name, i, float(eps[i]))
    name, i, _ = best
    return EpsilonWitness(
        name, float(tpr[i]), float(fpr[i]), float(tpr_lo[i]), float(fpr_hi[i]), delta, bound
    )


__getattr__ = lazy_submodules(__name__, {"exposure", "audit"})  # chapter 08's part of this concern
