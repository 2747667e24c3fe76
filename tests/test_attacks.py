"""Membership-inference metrics against independent references."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

import labkit as lk


def _scores(shift, n=2000, seed=0):
    gen = np.random.default_rng(seed)
    return gen.normal(shift, 1.0, n), gen.normal(0.0, 1.0, n)


@pytest.mark.parametrize("shift", [0.0, 0.5, 2.0])
def test_auc_matches_sklearn(shift):
    pos, neg = _scores(shift)
    truth = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    assert lk.attacks.roc_auc(pos, neg) == pytest.approx(
        roc_auc_score(truth, np.r_[pos, neg]), abs=1e-12
    )


def test_roc_handles_ties_like_sklearn():
    pos, neg = np.array([1, 1, 0, 2, 2]), np.array([0, 1, 1, 0])
    fpr, tpr, _ = lk.attacks.roc_curve(pos, neg)
    sk_fpr, sk_tpr, _ = sk_roc_curve(
        np.r_[np.ones(5), np.zeros(4)], np.r_[pos, neg], drop_intermediate=False
    )
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_separable_scores_are_perfect_and_identical_scores_are_chance():
    assert lk.attacks.roc_auc([2, 3, 4], [0, 1]) == 1.0
    assert lk.attacks.roc_auc([1, 1, 1], [1, 1]) == 0.5
    assert lk.attacks.tpr_at_fpr([2, 3, 4], [0, 1], 0.0) == 1.0


def test_empirical_epsilon_is_a_valid_lower_bound():
    # Scores from the Gaussian mechanism with sensitivity 1 and sigma s: the pair of output
    # distributions N(1, s^2) vs N(0, s^2). Their true pure-DP epsilon is infinite, but the
    # (eps, delta) curve is known; at delta = 1e-5 and s = 1 the true eps is about 4.4.
    pos, neg = _scores(1.0, n=20000, seed=1)
    eps_lb = lk.attacks.empirical_epsilon(pos, neg, delta=1e-5)
    assert 0.2 < eps_lb < 4.4
    # With no signal at all the bound must be (close to) zero.
    pos0, neg0 = _scores(0.0, n=20000, seed=2)
    assert lk.attacks.empirical_epsilon(pos0, neg0, delta=1e-5) < 0.1
    # More separation -> a larger bound.
    pos3, neg3 = _scores(3.0, n=20000, seed=3)
    assert lk.attacks.empirical_epsilon(pos3, neg3, delta=1e-5) > eps_lb


def test_loss_threshold_attack_uses_low_loss_as_member():
    gen = np.random.default_rng(0)
    members = gen.exponential(0.1, 1000)  # training examples: small losses
    nonmembers = gen.exponential(1.0, 1000)
    audit = lk.attacks.loss_threshold_attack(members, nonmembers)
    assert audit.auc > 0.85 and audit.advantage > 0.5
    assert audit.tpr_at_01pct_fpr <= audit.tpr_at_1pct_fpr <= 1.0
    assert audit.auc == pytest.approx(10 / 11, abs=0.02)  # P(loss_member < loss_non) = 10/11
    assert audit.summary().startswith(f"AUC {audit.auc:.3f}, advantage")
    flipped = lk.attacks.loss_threshold_attack(nonmembers, members)
    assert flipped.auc == pytest.approx(1 - audit.auc, abs=1e-9)


def test_attack_errors():
    with pytest.raises(ValueError, match="non-empty"):
        lk.attacks.roc_auc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        lk.attacks.roc_auc([np.nan], [1.0])
    with pytest.raises(ValueError, match=r"delta must be a finite number in \[0, 1\)"):
        lk.attacks.empirical_epsilon([1.0], [0.0], delta=1.0)
    with pytest.raises(ValueError, match=r"max_fpr must be a finite number in \[0, 1\]"):
        lk.attacks.tpr_at_fpr([1.0], [0.0], 2.0)


def test_labels_leak_from_the_output_bias_gradient():
    lk.set_seed(0)
    ds = lk.load_digits()
    model = lk.build_model("2nn", ds.input_shape, 10, small=True, seed=0)
    for labels in ([3], [0, 7], [1, 2, 5, 9]):
        mask = np.isin(ds.y_train, labels)
        g = lk.attacks.output_bias_gradient(model, ds.x_train[mask][:40], ds.y_train[mask][:40])
        # Reference: for softmax cross-entropy the bias gradient is mean(p - onehot(y)).
        logits = model(ds.x_train[mask][:40]).numpy()
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        expected = (p - np.eye(10)[ds.y_train[mask][:40]]).mean(0)
        np.testing.assert_allclose(g, expected, atol=1e-6)
        assert lk.attacks.infer_labels_from_gradient(g).tolist() == sorted(labels)


def test_member_split_is_disjoint_and_same_pool():
    ds = lk.load_digits()
    (xm, ym), (xn, yn) = lk.experiments.member_split(ds, 200, seed=4)
    assert len(xm) == len(xn) == 200
    flat = {x.tobytes() for x in xm}
    assert not flat & {x.tobytes() for x in xn}  # digits has no duplicate images
    (xm2, _), _ = lk.experiments.member_split(ds, 200, seed=4)
    np.testing.assert_array_equal(xm, xm2)
    with pytest.raises(ValueError, match=r"num_members must be an integer in \[1, "):
        lk.experiments.member_split(ds, len(ds.x_train))
