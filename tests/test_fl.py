"""labkit.fl: FedSGD equals full-batch gradient descent, FedAvg's weighting, the plug-in, errors."""

import numpy as np
import pytest
import tensorflow as tf

import labkit as lk
from labkit.fl._cohort import CohortTrainer


def _args(client_fraction, local_epochs, batch_size, learning_rate=0.1) -> dict:
    """FedAvg's C, E, B, eta as keywords (fedavg takes them keyword-only)."""
    return dict(
        client_fraction=client_fraction,
        local_epochs=local_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
    )


@pytest.fixture(scope="module")
def digits():
    return lk.data.subsample(lk.load_digits(), 300, 200, seed=0)


def _clients(ds, sizes=(40, 100, 160)):
    bounds = np.cumsum((0,) + tuple(sizes))
    parts = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return lk.fl.client_datasets(ds.x_train, ds.y_train, parts)


def _model(ds, seed=0):
    return lk.build_model("2nn", ds.input_shape, ds.num_classes, small=True, seed=seed)


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


def _gd_step(model, x, y, learning_rate):
    """Reference: one gradient-descent step on the mean loss over (x, y), by GradientTape."""
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x))
    grads = tape.gradient(loss, model.trainable_variables)
    return [
        v.numpy() - learning_rate * g.numpy()
        for v, g in zip(model.trainable_variables, grads, strict=True)
    ]


@pytest.mark.parametrize("vectorize", [True, False])
def test_one_fedsgd_round_is_one_full_batch_gd_step_on_the_union(digits, vectorize):
    clients = _clients(digits)
    model = _model(digits)
    lk.fl.fedsgd(model, clients, 1, client_fraction=1.0, learning_rate=0.5, vectorize=vectorize)
    x = np.concatenate([c[0] for c in clients])
    y = np.concatenate([c[1] for c in clients])
    expected = _gd_step(_model(digits), x, y, 0.5)
    got = _weights(model)
    start = _weights(_model(digits))
    moved = max(np.abs(e - w).max() for e, w in zip(expected, start, strict=True))
    assert moved > 1e-3  # the step is not trivially small
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)


def test_fedsgd_equivalence_holds_for_a_cnn_trained_client_by_client(digits):
    # The CNN cannot be vectorised, so this covers the one-client-at-a-time path in the loop.
    clients = _clients(digits)
    model = lk.build_model("cnn", digits.input_shape, 10, small=True, seed=0)
    lk.fl.fedsgd(model, clients, 1, client_fraction=1.0, learning_rate=0.5)
    ref = lk.build_model("cnn", digits.input_shape, 10, small=True, seed=0)
    expected = _gd_step(ref, digits.x_train, digits.y_train, 0.5)
    for g, e in zip(_weights(model), expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)


def test_fedavg_e1_ball_same_as_fedsgd_and_weighting_matters(digits):
    clients = _clients(digits)
    a, b, c = _model(digits), _model(digits), _model(digits)
    lk.fl.fedavg(
        a, clients, 1, client_fraction=1.0, local_epochs=1, batch_size=None, learning_rate=0.5
    )
    lk.fl.fedavg(
        b, clients, 1, client_fraction=1.0, local_epochs=1, batch_size=1000, learning_rate=0.5
    )
    # The source's formula: an unweighted combination is a different (wrong) step here.
    lk.fl.fedsgd(c, clients, 1, client_fraction=1.0, learning_rate=0.5,
              aggregator=lk.aggregation.WeightedMean(weighted=False))  # fmt: skip
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)
    pairs = zip(_weights(a), _weights(c), strict=True)
    assert max(np.abs(wa - wc).max() for wa, wc in pairs) > 1e-4


def test_client_update_matches_hand_written_minibatch_sgd(digits):
    model = _model(digits)
    w0 = _weights(model)
    x, y = digits.x_train[:7], digits.y_train[:7]
    update = lk.fl.make_client_update(model)
    got, n = update(w0, x, y, local_epochs=2, batch_size=3, learning_rate=0.2, seed=5)
    assert n == 7
    # Independent reference: same shuffles, batches of 3, 3, 1 per epoch, plain SGD steps.
    ref = _model(digits)
    rng = np.random.default_rng(5)
    orders = [rng.permutation(7) for _ in range(2)]
    for order in orders:
        for s in range(0, 7, 3):
            idx = order[s : s + 3]
            new = _gd_step(ref, x[idx], y[idx], 0.2)
            for v, w in zip(ref.trainable_variables, new, strict=True):
                v.assign(w)
    for g, e in zip(got, _weights(ref), strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)


@pytest.mark.parametrize("chunked", [True, False])
def test_vectorised_clients_equal_one_by_one_training(digits, chunked, monkeypatch):
    # Unequal clients, short last batches, two epochs, a sampled subset: both paths agree, with
    # the first kernel updated every step or once per chunk (Gram corrections in between).
    monkeypatch.setattr(CohortTrainer, "chunk_min_bytes", 0 if chunked else 2**62)
    clients = _clients(digits, sizes=(13, 40, 7, 100, 61))
    runs = []
    for vectorize in (True, False):
        model = _model(digits)
        lk.fl.fedavg(model, clients, 2, **_args(0.6, 2, 9, 0.2), seed=4, vectorize=vectorize)
        runs.append(_weights(model))
    moved = max(np.abs(a - b).max() for a, b in zip(runs[0], _weights(_model(digits)), strict=True))
    assert moved > 1e-2
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)


def test_weighted_mean_against_numpy():
    rng = np.random.default_rng(0)
    updates = [[rng.normal(size=(3, 2)), rng.normal(size=4)] for _ in range(3)]
    counts = np.array([1.0, 2.0, 7.0])
    out = lk.aggregation.WeightedMean().aggregate(updates, counts)
    for i in range(2):
        expected = sum(c * u[i] for c, u in zip(counts, updates, strict=True)) / counts.sum()
        np.testing.assert_allclose(out[i], expected, rtol=1e-12)
    plain = lk.aggregation.WeightedMean(weighted=False).aggregate(updates, counts)
    np.testing.assert_allclose(plain[1], np.mean([u[1] for u in updates], axis=0), rtol=1e-12)


def test_flatten_round_trip_and_a_vector_aggregator(digits):
    rng = np.random.default_rng(0)
    like = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
    vec = lk.aggregation.flatten_weights(like)
    assert vec.shape == (10,) and vec.dtype == np.float64
    back = lk.aggregation.unflatten_weights(vec, like)
    for a, b in zip(back, like, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    with pytest.raises(ValueError, match="vector must be 10 values"):
        lk.aggregation.unflatten_weights(vec[:-1], like)

    class VectorMean(
        lk.aggregation.Aggregator
    ):  # how a vector-based plug-in (e.g. Paillier) wraps itself
        def aggregate(self, updates, weights):
            vectors = np.stack([lk.aggregation.flatten_weights(u) for u in updates])
            return lk.aggregation.unflatten_weights(
                np.average(vectors, axis=0, weights=weights), updates[0]
            )

    runs = []
    for aggregator in (VectorMean(), lk.aggregation.WeightedMean()):
        model = _model(digits)
        lk.fl.fedavg(
            model, _clients(digits), 2, **_args(1.0, 1, 20, 0.2), aggregator=aggregator, seed=0
        )
        runs.append(_weights(model))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


class _Recorder(lk.aggregation.Aggregator):
    def __init__(self):
        self.calls = []

    def aggregate(self, updates, weights):
        self.calls.append((updates, np.array(weights)))
        return lk.aggregation.WeightedMean().aggregate(updates, weights)


def test_loop_hands_deltas_and_example_counts_to_the_aggregator(digits):
    clients = _clients(digits)
    model = _model(digits)
    w0 = _weights(model)
    rec = _Recorder()
    lk.fl.fedavg(model, clients, 1, **_args(1.0, 1, 10), aggregator=rec, seed=0)
    (updates, weights), = rec.calls  # fmt: skip
    np.testing.assert_array_equal(weights, [40, 100, 160])
    # Global weights after the round = start + the aggregate of what the recorder saw.
    agg = lk.aggregation.WeightedMean().aggregate(updates, weights)
    for w, a, d in zip(_weights(model), w0, agg, strict=True):
        np.testing.assert_allclose(w, a + d, rtol=0, atol=1e-7)


def test_deterministic_under_a_seed_and_learns(digits):
    parts = lk.data.partition_iid(digits.y_train, 10, seed=0)
    clients = lk.fl.client_datasets(digits.x_train, digits.y_train, parts)
    test = (digits.x_test, digits.y_test)
    runs = []
    for _ in range(2):
        model = _model(digits)
        hist = lk.fl.fedavg(model, clients, 8, **_args(0.5, 2, 10, 0.3), test_data=test, seed=3)
        runs.append((hist, _weights(model)))
    (h1, w1), (h2, w2) = runs
    assert h1.test_accuracy == h2.test_accuracy
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert h1.test_accuracy[-1] > 0.8  # chance is 0.1
    assert h1.rounds == list(range(1, 9))
    size = lk.fl.model_bytes(w1)
    assert h1.clients_per_round == 5
    assert h1.bytes_up == [5 * size * r for r in h1.rounds] == h1.bytes_down
    assert h1.rounds_to(0.0) == 1 and h1.rounds_to(1.01) is None
    assert np.all(np.diff(h1.wall_time) > 0)


def test_target_accuracy_stops_early(digits):
    clients = _clients(digits)
    hist = lk.fl.fedavg(_model(digits), clients, 50, **_args(1.0, 1, 10, 0.1),
                     test_data=(digits.x_test, digits.y_test), target_accuracy=0.5)  # fmt: skip
    assert hist.rounds[-1] == hist.rounds_to(0.5) < 50


def test_sample_clients():
    assert lk.fl.num_sampled_clients(100, 0.1) == 10
    assert lk.fl.num_sampled_clients(100, 0.001) == 1
    ids = lk.fl.sample_clients(100, 0.3, seed=1)
    assert len(set(ids)) == 30 and ids.min() >= 0 and ids.max() < 100


class _WrongShapes(lk.aggregation.Aggregator):
    def aggregate(self, updates, weights):
        return [u.T for u in updates[0]]


class _TooFew(lk.aggregation.Aggregator):
    def aggregate(self, updates, weights):
        return updates[0][:-1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"client_fraction": 0.0}, "client_fraction"),
        ({"client_fraction": 1.5}, "client_fraction"),
        ({"local_epochs": 0}, "local_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_rounds": 0}, "num_rounds"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"aggregator": _WrongShapes()}, "shapes"),
        ({"aggregator": _TooFew()}, "list of"),
        ({"target_accuracy": 0.9}, "test_data"),
    ],
)
def test_bad_input_raises(digits, kwargs, match):
    args = {"num_rounds": 1, "client_fraction": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        lk.fl.fedavg(_model(digits), _clients(digits), **args)


def test_no_clients_and_empty_clients_raise(digits):
    with pytest.raises(ValueError, match="clients"):
        lk.fl.fedavg(_model(digits), [], 1)
    with pytest.raises(ValueError, match=r"partitions\[1\] must be non-empty"):
        lk.fl.client_datasets(digits.x_train, digits.y_train, [np.arange(3), np.arange(0)])
    empty = (digits.x_train[:0], digits.y_train[:0])
    with pytest.raises(ValueError, match=r"clients\[1\] must be at least 1 example"):
        lk.fl.fedavg(_model(digits), [_clients(digits)[0], empty], 1)
    update = lk.fl.make_client_update(_model(digits))
    with pytest.raises(ValueError, match="at least 1 example"):
        update(_weights(_model(digits)), *empty)
    with pytest.raises(ValueError, match=r"weights must be shapes \["):
        update(_weights(_model(digits))[:-1], digits.x_train[:5], digits.y_train[:5])


class _Nan(lk.aggregation.Aggregator):
    def aggregate(self, updates, num_examples):
        return [np.full_like(a, np.nan) for a in updates[0]]


def test_non_finite_values_never_reach_the_global_model(digits):
    clients = _clients(digits)
    bad_x = clients[0][0].copy()
    bad_x[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"clients\[0\] inputs must be finite"):
        lk.fl.fedavg(_model(digits), [(bad_x, clients[0][1]), *clients[1:]], 1)
    with pytest.raises(ValueError, match="must be finite"):
        lk.fl.fedavg(_model(digits), clients, 1, client_fraction=1.0, aggregator=_Nan())
    with pytest.raises(ValueError, match="learning_rate"):  # training diverges to inf/NaN
        lk.fl.fedavg(_model(digits), clients, 3, **_args(1.0, 5, 5, 1e30))


def test_labels_must_be_integer_classes(digits):
    x, y = _clients(digits)[0]
    with pytest.raises(ValueError, match="fractional"):
        lk.fl.fedavg(_model(digits), [(x, y + 0.5)], 1)
    with pytest.raises(ValueError, match="1-D"):
        lk.fl.fedavg(_model(digits), [(x, np.eye(10)[y])], 1)
    # Integral floats are class labels: accepted, and train exactly as the integers do.
    a, b = _model(digits), _model(digits)
    lk.fl.fedavg(a, [(x, y)], 1, client_fraction=1.0, seed=0)
    lk.fl.fedavg(b, [(x, y.astype(np.float32))], 1, client_fraction=1.0, seed=0)
    for u, v in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_numpy_scalars_are_numbers(digits):
    hist = lk.fl.fedavg(
        _model(digits),
        _clients(digits),
        np.int64(1),
        client_fraction=np.float32(0.5),
        local_epochs=np.int32(1),
        batch_size=np.int64(10),
        learning_rate=np.float32(0.1),
    )
    assert hist.rounds == [1]
    assert lk.fl.num_sampled_clients(np.int64(10), np.float64(0.3)) == 3
