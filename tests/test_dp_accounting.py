"""Accounting: labkit's numbers against direct dp-accounting computations, and named errors."""

import dp_accounting
import pytest

import labkit as lk


def direct_epsilon(sigma, q, steps, delta, accountant):
    acc = (
        dp_accounting.rdp.RdpAccountant()
        if accountant == "rdp"
        else dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    )
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    acc.compose(event, steps)
    return acc.get_epsilon(delta)


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_epsilon_matches_direct_dp_accounting(accountant):
    eps = lk.dp.dpsgd_epsilon(1.1, 256, 60_000, 15, 1e-5, accountant=accountant)
    steps = -(-15 * 60_000 // 256)
    assert eps == pytest.approx(direct_epsilon(1.1, 256 / 60_000, steps, 1e-5, accountant))


def test_known_value_and_pld_is_tighter():
    # TF Privacy's tutorial setting (sigma 1.1, batch 256, 60 epochs) quoted epsilon 3.01 with an
    # older RDP-to-(epsilon, delta) conversion; today's conversion (Balle et al. 2020) is tighter.
    rdp = lk.dp.dpsgd_epsilon(1.1, 256, 60_000, 60, 1e-5)
    assert 2.4 < rdp < 3.01
    assert lk.dp.dpsgd_epsilon(1.1, 256, 60_000, 60, 1e-5, accountant="pld") < rdp


def test_noise_multiplier_round_trip():
    sigma = lk.dp.dpsgd_noise_multiplier(2.0, 512, 60_000, 20, 1e-5)
    assert lk.dp.dpsgd_epsilon(sigma, 512, 60_000, 20, 1e-5) <= 2.0
    assert lk.dp.dpsgd_epsilon(sigma - 0.01, 512, 60_000, 20, 1e-5) > 2.0
    more = lk.dp.dpsgd_noise_multiplier(1.0, 512, 60_000, 20, 1e-5)
    assert more > sigma  # a smaller budget needs more noise


@pytest.mark.parametrize(
    "args",
    [(8.0, 256, 1500, 2), (0.5, 256, 1500, 2), (3.0, 512, 60_000, 40), (1.0, 100, 10_000, 5)],
)
def test_noise_multiplier_is_the_feasible_end_within_tol(args):
    """The search returns sigma in (root, root + tol]: it meets epsilon, sigma - tol does not."""
    epsilon, batch, n, epochs = args
    for tol in (1e-3, 1e-2):
        sigma = lk.dp.dpsgd_noise_multiplier(epsilon, batch, n, epochs, 1e-5, tol=tol)
        assert lk.dp.dpsgd_epsilon(sigma, batch, n, epochs, 1e-5) <= epsilon
        assert lk.dp.dpsgd_epsilon(sigma - tol, batch, n, epochs, 1e-5) > epsilon


def test_unreachable_epsilon_is_a_named_error():
    with pytest.raises(lk.dp.UnreachableEpsilonError, match="unreachable"):
        lk.dp.dpsgd_noise_multiplier(1e-3, 1000, 1000, 100, 1e-5, max_noise_multiplier=5)
    assert issubclass(lk.dp.UnreachableEpsilonError, ValueError)


def test_more_steps_cost_more_and_zero_noise_is_infinite():
    assert lk.dp.dpsgd_epsilon(1.0, 256, 60_000, 10, 1e-5) < lk.dp.dpsgd_epsilon(
        1.0, 256, 60_000, 20, 1e-5
    )
    assert lk.dp.dpsgd_epsilon(0.0, 256, 60_000, 1, 1e-5) == float("inf")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"batch_size": 70_000}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"epochs": 0}, "epochs"),
        ({"accountant": "moments"}, "accountant"),
        ({"sampling": "sliding"}, "sampling"),
    ],
)
def test_bad_accounting_input(kwargs, match):
    args = dict(noise_multiplier=1.0, batch_size=256, num_examples=60_000, epochs=1, delta=1e-5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lk.dp.dpsgd_epsilon(**args)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, float("inf")])
def test_bad_target_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        lk.dp.dpsgd_noise_multiplier(epsilon, 256, 60_000, 1, 1e-5)
