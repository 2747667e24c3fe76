"""Chapter 05: secure aggregation and DP-FedAvg as aggregators in the FedAvg loop.

Paillier tests use an opt-in 1024-bit key for speed (insecure; fine for arithmetic checks).
References are computed independently here with NumPy (and dp-accounting for epsilon).
"""

import math

import dp_accounting
import numpy as np
import pytest

import labkit as lk


@pytest.fixture(scope="module")
def keys(insecure_keypair):
    return insecure_keypair(1024)


SHAPES = [(30, 7), (7,)]


def _updates(num: int, scale: float, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.uniform(-scale, scale, s).astype(np.float32) for s in SHAPES] for _ in range(num)]


def _flat(u):
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in u])


# --- SecureAggregator -------------------------------------------------------------------------
def test_secure_mean_equals_plain_weighted_mean_within_quantisation(keys):
    spec = lk.he.PackingSpec(-1.0, 1.0, 16, 100)
    updates, counts = _updates(4, 0.9), np.array([5.0, 17.0, 30.0, 8.0])
    agg = lk.he.SecureAggregator(*keys, spec)
    got = _flat(agg.aggregate(updates, counts))
    plain = _flat(lk.aggregation.WeightedMean().aggregate(updates, counts))
    err = np.max(np.abs(got - plain))
    assert err <= spec.step / 2 + 1e-6  # the stated bound (+ float32 rounding of the result)
    # Exact: the decrypted aggregate is the weighted mean of the quantised values.
    q = [lk.he.dequantize(lk.he.quantize(_flat(u), spec), spec) for u in updates]
    exact = np.tensordot(counts / counts.sum(), np.stack(q), axes=1)
    np.testing.assert_allclose(got, exact.astype(np.float32), rtol=0, atol=1e-7)
    assert [a.shape for a in agg.aggregate(updates, counts)] == SHAPES


def test_secure_records_what_the_server_saw(keys):
    pk, _ = keys
    spec = lk.he.PackingSpec(-1.0, 1.0, 16, 100)
    agg = lk.he.SecureAggregator(*keys, spec)
    agg.aggregate(_updates(3, 0.5), np.array([1.0, 2.0, 3.0]))
    rec = agg.history[-1]
    dim = sum(math.prod(s) for s in SHAPES)
    assert rec["clients"] == 3 and rec["values_per_client"] == dim
    assert rec["ciphertexts_per_client"] == math.ceil(dim / spec.slots(pk))
    assert rec["bytes_up_per_client"] == rec["ciphertexts_per_client"] * lk.he.ciphertext_bytes(pk)
    assert rec["ciphertexts_decrypted"] == rec["ciphertexts_per_client"]  # only the aggregate
    assert rec["total_weight"] == 6 and rec["clipped_values"] == 0


def test_secure_clips_into_range_and_counts(keys):
    spec = lk.he.PackingSpec(-0.1, 0.1, 16, 10)
    updates = _updates(2, 0.3, seed=1)
    agg = lk.he.SecureAggregator(*keys, spec, weighted=False)
    got = _flat(agg.aggregate(updates, np.array([4.0, 9.0])))
    clipped = [np.clip(_flat(u), -0.1, 0.1) for u in updates]
    assert np.max(np.abs(got - np.mean(clipped, axis=0))) <= spec.step / 2 + 1e-7
    expected = sum(int(np.sum(np.abs(_flat(u)) > 0.1)) for u in updates)
    assert agg.history[-1]["clipped_values"] == expected > 0


def test_secure_refuses_before_encrypting(keys, other_keys, no_encrypt):
    pk, sk = keys
    spec = lk.he.PackingSpec(-1.0, 1.0, 16, 10)
    never = no_encrypt(pk)
    agg = lk.he.SecureAggregator(pk, sk, spec, encryptor=never)
    with pytest.raises(lk.he.HeadroomError, match="max_summands=10"):
        agg.aggregate(_updates(2, 0.5), np.array([6.0, 5.0]))  # weights too large
    unweighted = lk.he.SecureAggregator(pk, sk, spec, weighted=False, encryptor=never)
    with pytest.raises(lk.he.HeadroomError):
        unweighted.aggregate(_updates(11, 0.5), np.ones(11))  # too many clients
    bad = _updates(2, 0.5)
    bad[1][0][0, 0] = np.nan
    with pytest.raises(lk.he.NonFiniteValueError, match=r"updates\[1\]"):
        agg.aggregate(bad, np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="integer weights"):
        agg.aggregate(_updates(2, 0.5), np.array([1.5, 1.0]))
    strict = lk.he.SecureAggregator(pk, sk, spec, clip=False, encryptor=never)
    with pytest.raises(lk.he.ValueRangeError, match="packing range"):
        strict.aggregate(_updates(2, 1.5), np.array([1.0, 1.0]))
    with pytest.raises(lk.he.WrongKeyError):
        lk.he.SecureAggregator(pk, other_keys[1], spec)
    with pytest.raises(lk.he.KeyMismatchError):
        lk.he.SecureAggregator(pk, sk, spec, encryptor=lk.he.FastEncryptor(other_keys[0]))


@pytest.fixture(scope="module")
def digits_clients():
    lk.set_seed(0)
    ds = lk.load_digits()
    parts = lk.data.partition_iid(ds.y_train, 10, seed=0)
    return ds, lk.fl.client_datasets(ds.x_train, ds.y_train, parts)


def _run(ds, clients, aggregator, num_rounds=8):
    model = lk.build_model("logistic", ds.input_shape, ds.num_classes, seed=0)
    hist = lk.fl.fedavg(
        model,
        clients,
        num_rounds,
        client_fraction=0.5,
        batch_size=10,
        learning_rate=0.1,
        aggregator=aggregator,
        test_data=(ds.x_test, ds.y_test),
        seed=0,
    )
    return hist, [v.numpy() for v in model.trainable_variables]


def test_fedavg_with_secure_aggregation_matches_plain(keys, digits_clients):
    ds, clients = digits_clients
    plain, w_plain = _run(ds, clients, lk.aggregation.WeightedMean())
    spec = lk.he.PackingSpec(-1.0, 1.0, 16, sum(len(y) for _, y in clients))
    agg = lk.he.SecureAggregator(*keys, spec)
    secure, w_secure = _run(ds, clients, agg)
    assert plain.final_accuracy > 0.85
    assert abs(secure.final_accuracy - plain.final_accuracy) <= 0.01
    assert sum(h["clipped_values"] for h in agg.history) == 0  # so only quantisation differs
    # Errors of step/2 per round compound only mildly through training.
    assert np.max(np.abs(_flat(w_secure) - _flat(w_plain))) < 1e-2


# --- DP-FedAvg ----------------------------------------------------------------------------------
def _reference_clipped_sum(updates, clip):
    total = 0.0
    for u in updates:
        v = _flat(u)
        n = np.sqrt(np.sum(v * v))
        total = total + (v if n <= clip else v * (clip / n))
    return total


def test_dpfedavg_noise_off_equals_clipped_mean_with_fixed_denominator():
    updates = _updates(4, 0.2, seed=3)
    norms = [np.linalg.norm(_flat(u)) for u in updates]
    clip = float(np.median(norms))  # half the clients get clipped
    agg = lk.dp.DPFedAvgAggregator(clip, 0.0, clients_per_round=5)
    got = _flat(agg.aggregate(updates, np.array([1.0, 50.0, 2.0, 7.0])))
    expected = _reference_clipped_sum(updates, clip) / 5  # divided by 5 expected, not 4 received
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, atol=1e-8)
    assert agg.history[-1] == {
        "clients": 4,
        "clipped": int(sum(n > clip for n in norms)),
        "median_norm": pytest.approx(float(np.median(norms))),
    }
    # Example counts are ignored: equal weights bound each user's influence.
    again = _flat(agg.aggregate(updates, np.ones(4)))
    np.testing.assert_array_equal(again, got)
    assert agg.num_rounds == 2


def test_dpfedavg_each_clipped_update_moves_the_sum_by_at_most_the_clip():
    updates = _updates(3, 1.0, seed=4)
    agg = lk.dp.DPFedAvgAggregator(0.3, 0.0, clients_per_round=3)
    with_all = _flat(agg.aggregate(updates, np.ones(3))) * 3
    without = _flat(agg.aggregate(updates[:2], np.ones(2))) * 3
    assert np.linalg.norm(with_all - without) <= 0.3 + 1e-6


@pytest.mark.parametrize("noise_at", ["server", "clients"])
def test_dpfedavg_noise_std_matches(noise_at):
    dim, m, clip, z = 40_000, 4, 0.5, 2.0
    zeros = [[np.zeros(dim, np.float32)] for _ in range(m)]
    agg = lk.dp.DPFedAvgAggregator(clip, z, clients_per_round=m, noise_at=noise_at, seed=7)
    noise = _flat(agg.aggregate(zeros, np.ones(m)))
    std = z * clip / m
    assert agg.noise_std == pytest.approx(std)
    # sample std of 40k normals: relative standard error 1/sqrt(2 * 40k) = 0.35%; allow 2%.
    assert abs(noise.std() / std - 1) < 0.02
    assert abs(noise.mean()) < 5 * std / math.sqrt(dim)
    # Seeded: the same seed gives the same noise, another seed different noise.
    same = lk.dp.DPFedAvgAggregator(clip, z, clients_per_round=m, noise_at=noise_at, seed=7)
    np.testing.assert_array_equal(_flat(same.aggregate(zeros, np.ones(m))), noise)
    other = lk.dp.DPFedAvgAggregator(clip, z, clients_per_round=m, noise_at=noise_at, seed=8)
    assert not np.array_equal(_flat(other.aggregate(zeros, np.ones(m))), noise)


def test_dpfedavg_over_secure_aggregation_equals_clipped_mean(keys):
    updates = _updates(3, 0.2, seed=5)
    clip, m = 0.4, 3
    spec = lk.he.PackingSpec(-clip, clip, 16, m)  # a clipped update has every value in [-C, C]
    inner = lk.he.SecureAggregator(*keys, spec, weighted=False)
    agg = lk.dp.DPFedAvgAggregator(clip, 0.0, clients_per_round=m, sum_aggregator=inner)
    got = _flat(agg.aggregate(updates, np.array([3.0, 4.0, 5.0])))
    expected = _reference_clipped_sum(updates, clip) / m
    assert np.max(np.abs(got - expected)) <= spec.step / 2 + 1e-7
    assert inner.history[-1]["clipped_values"] == 0 and inner.history[-1]["clients"] == m


def test_dpfedavg_with_huge_clip_and_no_noise_is_unweighted_fedavg(digits_clients):
    ds, clients = digits_clients
    _, w_ref = _run(ds, clients, lk.aggregation.WeightedMean(weighted=False), num_rounds=3)
    agg = lk.dp.DPFedAvgAggregator(1e6, 0.0, clients_per_round=5)
    _, w_dp = _run(ds, clients, agg, num_rounds=3)
    np.testing.assert_allclose(_flat(w_dp), _flat(w_ref), rtol=0, atol=1e-5)
    assert agg.num_rounds == 3


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_dpfedavg_epsilon_matches_dp_accounting(accountant):
    z, m, k, rounds, delta = 1.1, 20, 1000, 200, 1e-6
    if accountant == "rdp":
        acc = dp_accounting.rdp.RdpAccountant()
    else:
        acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    event = dp_accounting.PoissonSampledDpEvent(m / k, dp_accounting.GaussianDpEvent(z))
    acc.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    expected = acc.get_epsilon(delta)
    got = lk.dp.dpfedavg_epsilon(z, m, k, rounds, delta, accountant=accountant)
    assert got == pytest.approx(expected, rel=1e-9)
    assert 0 < got < 10
    # More users at the same clients per round (and so the same noise on the mean): less epsilon.
    assert lk.dp.dpfedavg_epsilon(z, m, 10 * k, rounds, delta) < lk.dp.dpfedavg_epsilon(
        z, m, k, rounds, delta
    )
    assert lk.dp.dpfedavg_epsilon(0.0, m, k, rounds, delta) == math.inf


def test_aggregator_epsilon_counts_its_rounds():
    agg = lk.dp.DPFedAvgAggregator(1.0, 1.0, clients_per_round=10, seed=0)
    assert agg.epsilon(num_clients=100, delta=1e-5) == 0.0
    for _ in range(3):
        agg.aggregate([[np.ones(5, np.float32)] for _ in range(10)], np.ones(10))
    assert agg.epsilon(100, 1e-5) == pytest.approx(lk.dp.dpfedavg_epsilon(1.0, 10, 100, 3, 1e-5))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"l2_norm_clip": 0.0}, "l2_norm_clip"),
        ({"l2_norm_clip": -1.0}, "l2_norm_clip"),
        ({"l2_norm_clip": float("nan")}, "l2_norm_clip"),
        ({"noise_multiplier": -0.1}, "noise_multiplier"),
        ({"noise_multiplier": float("inf")}, "noise_multiplier"),
        ({"clients_per_round": 0}, "clients_per_round"),
        ({"clients_per_round": 2.5}, "clients_per_round"),
        ({"noise_at": "nowhere"}, "noise_at"),
    ],
)
def test_dpfedavg_rejects_bad_parameters(kwargs, name):
    params = {"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "clients_per_round": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        lk.dp.DPFedAvgAggregator(**params)


def test_dpfedavg_accounting_rejects_bad_parameters():
    with pytest.raises(ValueError, match="clients_per_round"):
        lk.dp.dpfedavg_epsilon(1.0, 200, 100, 10, 1e-5)
    with pytest.raises(ValueError, match="num_rounds"):
        lk.dp.dpfedavg_epsilon(1.0, 10, 100, 0, 1e-5)
    with pytest.raises(ValueError, match="delta"):
        lk.dp.dpfedavg_epsilon(1.0, 10, 100, 10, 1.5)
    with pytest.raises(ValueError, match="noise_multiplier"):
        lk.dp.dpfedavg_epsilon(-1.0, 10, 100, 10, 1e-5)
    agg = lk.dp.DPFedAvgAggregator(1.0, 1.0, clients_per_round=2)
    bad = [[np.array([np.nan, 0.0], np.float32)], [np.zeros(2, np.float32)]]
    with pytest.raises(ValueError, match="finite"):
        agg.aggregate(bad, np.ones(2))
    with pytest.raises(ValueError, match="updates"):
        agg.aggregate([], np.ones(0))


def test_federated_membership_experiment_dp_lowers_the_attack():
    lk.set_seed(0)
    ds = lk.data.subsample(lk.load_mnist(), 1_000, 500, seed=0)
    kwargs = dict(num_members=200, num_clients=10, num_rounds=15, seed=0)
    plain = lk.experiments.federated_membership_experiment(
        ds, lk.aggregation.WeightedMean(), **kwargs
    )
    dp = lk.dp.DPFedAvgAggregator(1.0, 3.0, clients_per_round=10, seed=0)
    private = lk.experiments.federated_membership_experiment(ds, dp, **kwargs)
    assert dp.num_rounds == 15
    assert plain["audit"].auc > 0.55  # the plain model memorises its 200 members
    assert private["audit"].auc < plain["audit"].auc - 0.03
    assert len(plain["member_losses"]) == len(plain["nonmember_losses"]) == 200
    with pytest.raises(ValueError, match="num_members"):
        lk.experiments.federated_membership_experiment(
            ds, lk.aggregation.WeightedMean(), num_members=600
        )


def test_distributed_noise_under_secure_aggregation_has_the_full_std(keys):
    dim, m, clip, z = 20_000, 4, 0.5, 1.0
    share = z * clip / math.sqrt(m)  # each client's noise share
    spec = lk.he.PackingSpec(-8 * share, 8 * share, 16, m)  # room for the noisy values
    decrypted = []

    class KeyHolderView(lk.he.SecureAggregator):
        def aggregate(self, updates, weights):
            decrypted.append(_flat(super().aggregate(updates, weights)))
            return [decrypted[-1]]

    inner = KeyHolderView(*keys, spec, weighted=False, clip=False)  # refuse, never clip
    agg = lk.dp.DPFedAvgAggregator(clip, z, m, sum_aggregator=inner, noise_at="clients", seed=3)
    zeros = [[np.zeros(dim, np.float32)] for _ in range(m)]
    noise = _flat(agg.aggregate(zeros, np.ones(m)))
    # The decrypted sum carries all m shares: std z * C / m on the mean, as with server noise,
    # and the key holder never sees an un-noised sum.
    assert abs(noise.std() / agg.noise_std - 1) < 0.03
    assert abs(decrypted[-1].std() / agg.noise_std - 1) < 0.03
    np.testing.assert_allclose(noise, decrypted[-1], rtol=0, atol=1e-6)
    assert inner.history[-1]["clients"] == m
