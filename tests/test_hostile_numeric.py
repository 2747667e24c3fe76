"""Hostile input for aggregation, DP mechanisms, data partitions, the FL loop and results.

A case passes when it gives the right value or a ``ParameterError`` naming the parameter.
"""

import json
import math
import random

import numpy as np
import pytest

import labkit as lk
from labkit import aggregation as ag
from labkit._checks import ParameterError
from labkit.dp import mechanisms as m

NOT_REAL = [None, "5", 1 + 2j, True, [1.0], math.nan, math.inf, -math.inf]


def named(name, fn, *args, **kwargs):
    with pytest.raises(ParameterError) as err:
        fn(*args, **kwargs)
    assert err.value.name == name, f"{err.value.name!r} != {name!r}: {err.value}"
    return err.value


# --- aggregation ------------------------------------------------------------------------------
def _u(*values):
    return [[np.asarray(v)] for v in values]


@pytest.mark.parametrize(
    ("updates", "name"),
    [
        ([], "updates"),
        (None, "updates"),
        (np.ones((2, 3)), "updates"),
        ([["a"], ["b"]], "updates[0][0]"),
        ([[None], [None]], "updates[0][0]"),
        (_u([1j], [1.0]), "updates[0][0]"),
        (_u([True], [False]), "updates[0][0]"),
        (_u([1.0], [math.nan]), "updates[1][0]"),
        (_u([1.0], [math.inf]), "updates[1][0]"),
        (_u([1.0], [1.0, 2.0]), "updates[1]"),
        ([[np.ones(2)], []], "updates[1]"),
        ([[np.ones(2)], np.ones(2)], "updates[1]"),
    ],
)
def test_weighted_mean_refuses_updates(updates, name):
    named(name, ag.weighted_mean, updates, [1, 1])


@pytest.mark.parametrize(
    "num_examples", [[1], [1, 2, 3], [-1, 2], [math.nan, 1], ["1", "2"], [1j, 1], [0, 0], None]
)
def test_weighted_mean_refuses_num_examples(num_examples):
    named("num_examples", ag.weighted_mean, _u([1.0], [2.0]), num_examples)


@pytest.mark.parametrize(
    ("updates", "counts", "expected"),
    [
        (_u([1e308], [1e308]), [1e308, 1e308], [1e308]),  # was 0.0: the counts' sum overflowed
        (_u([1], [2]), [1, 1], [1.5]),  # was 1: integer updates were truncated
        (_u([np.int64(1)], [np.int64(4)]), [np.int64(3), np.int64(1)], [1.75]),
        (_u([-1e308], [1e308]), [1, 1], [0.0]),
        (_u([3.0], [5.0]), [0, 2], [5.0]),
    ],
)
def test_weighted_mean_is_right(updates, counts, expected):
    out = ag.weighted_mean(updates, counts)
    assert out[0] == pytest.approx(expected)


def test_weighted_mean_keeps_float32_and_refuses_truthy_flags():
    out = ag.weighted_mean(_u(np.float32([1.0]), np.float32([2.0])), [1, 1])
    assert out[0].dtype == np.float32
    named("weighted", ag.weighted_mean, _u([1.0], [2.0]), [1, 1], "no")
    named("weighted", ag.WeightedMean, "no")
    assert ag.weighted_mean(_u([1.0], [2.0]), [0, 0], weighted=False)[0] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("fn", "args", "name"),
    [
        (ag.flatten_weights, ([],), "weights"),
        (ag.unflatten_weights, (np.ones(3), [np.ones(2)]), "vector"),
    ],
)
def test_flatten_helpers_refuse(fn, args, name):
    named(name, fn, *args)


# --- mechanisms -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["5", 1 + 2j, [1j], None, [math.nan], [math.inf], [True]])
@pytest.mark.parametrize("mech", ["laplace", "gaussian"])
def test_continuous_mechanisms_refuse_values(mech, value):
    if mech == "laplace":
        named("value", m.laplace_mechanism, value, 1, 1, seed=0)
    else:
        named("value", m.gaussian_mechanism, value, 1, 1, 1e-5, seed=0)


@pytest.mark.parametrize("bad", NOT_REAL + [0, -1])
@pytest.mark.parametrize("param", ["sensitivity", "epsilon"])
def test_laplace_refuses_parameters(param, bad):
    args = {"value": 0.0, "sensitivity": 1.0, "epsilon": 1.0, param: bad}
    named(param, m.laplace_mechanism, **args)


@pytest.mark.parametrize("bad", NOT_REAL + [0, 1, -0.5])
def test_gaussian_refuses_delta(bad):
    named("delta", m.gaussian_sigma, 1, 1, bad)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: m.laplace_mechanism(0, 1, 1e-320), "epsilon"),  # was inf
        (lambda: m.laplace_scale(1e300, 1e-300), "epsilon"),
        (lambda: m.gaussian_sigma(1e300, 1, 1e-5), "sensitivity"),  # was OverflowError
        (lambda: m.gaussian_mechanism(0, 1, 1e-300, 1e-5), "epsilon"),  # was OverflowError
        (lambda: m.classic_gaussian_sigma(1, 1.5, 1e-5), "epsilon"),
        (lambda: m.classic_gaussian_sigma(1, 1e-320, 1e-5), "epsilon"),
    ],
)
def test_scales_that_overflow_are_refused(call, name):
    named(name, call)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (np.array([2**63 - 1] * 20), "value"),  # was wrapping to -2^63
        (np.array([-(2**63)] * 20), "value"),
        (np.uint64(2**64 - 1), "value"),  # was -1
        (2**70, "value"),
        ([1.5], "value"),
        (["1"], "value"),
        ([True], "value"),
    ],
)
def test_discrete_laplace_refuses_values_it_cannot_release(value, name):
    named(name, m.discrete_laplace_mechanism, value, 1, 0.01, random.Random(0))


def test_discrete_laplace_near_the_limit_is_exact_when_it_fits():
    out = m.discrete_laplace_mechanism(np.array([2**62, -(2**62)]), 1, 5.0, random.Random(1))
    assert abs(int(out[0]) - 2**62) < 100 and abs(int(out[1]) + 2**62) < 100
    assert m.discrete_laplace_mechanism(np.uint64(7), 1, 1e9, random.Random(0)) in range(6, 9)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: m.discrete_laplace_mechanism([1], 0, 1), "sensitivity"),
        (lambda: m.discrete_laplace_mechanism([1], 1.5, 1), "sensitivity"),
        (lambda: m.discrete_laplace_mechanism([1], True, 1), "sensitivity"),
        (lambda: m.discrete_laplace(-1, 3), "scale"),
        (lambda: m.discrete_laplace(math.inf, 3), "scale"),
        (lambda: m.discrete_laplace(1, -1), "size"),
        (lambda: m.discrete_gaussian(math.nan, 3), "sigma"),
        (lambda: m.bernoulli_exp(-1), "gamma"),
        (lambda: m.bernoulli_exp("1"), "gamma"),
        (lambda: m.private_sum([1, 2], 3, 3, 1.0), "upper"),
        (lambda: m.private_sum([1, 2], 0.5, 3, 1.0), "lower"),
        (lambda: m.private_sum([1.5], 0, 3, 1.0), "values"),
        (lambda: m.private_count([True], 0), "epsilon"),
        (lambda: m.composed_epsilon([], 0.0), "epsilons"),
        (lambda: m.composed_epsilon([1.0, -1.0]), "epsilons[1]"),
        (lambda: m.composed_epsilon([1.0, math.nan]), "epsilons[1]"),
        (lambda: m.numpy_laplace_release(0.0, 0, 3), "scale"),
        (lambda: m.numpy_laplace_release("0", 1, 3), "value"),
        (lambda: m.float_attack([0.0], 0.0, 1.0, -1), "scale"),
        (lambda: m.float_attack([0.0], math.nan, 1.0, 1), "value_a"),
    ],
)
def test_integer_mechanisms_and_queries_refuse(call, name):
    named(name, call)


def test_mechanisms_take_numpy_scalars():
    assert m.laplace_scale(np.float32(2), np.int64(4)) == 0.5
    assert m.composed_epsilon([np.float64(0.5), np.float32(0.25)]) == pytest.approx(0.75)
    assert m.discrete_laplace_mechanism(5, np.int64(1), 1e9, random.Random(0)) in range(4, 7)


# --- data partitions ----------------------------------------------------------------------------
LABELS = np.repeat(np.arange(4), 10)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: lk.data.partition_iid(LABELS, 0), "num_clients"),
        (lambda: lk.data.partition_iid(LABELS, 41), "num_clients"),
        (lambda: lk.data.partition_iid(LABELS, 2.0), "num_clients"),
        (lambda: lk.data.partition_iid(LABELS, True), "num_clients"),
        (lambda: lk.data.partition_iid(np.eye(4)[LABELS], 2), "labels"),
        (lambda: lk.data.partition_iid(LABELS + 0.5, 2), "labels"),
        (lambda: lk.data.partition_iid(-LABELS - 1, 2), "labels"),
        (lambda: lk.data.partition_shards(LABELS, 3), "shards_per_client"),
        (lambda: lk.data.partition_shards(LABELS, 2, 0), "shards_per_client"),
        (lambda: lk.data.partition_dirichlet(LABELS, 2, 0.0), "alpha"),
        (lambda: lk.data.partition_dirichlet(LABELS, 2, math.nan), "alpha"),
        (lambda: lk.data.partition_dirichlet(LABELS, 2, 1.0, min_size=30), "min_size"),
        (lambda: lk.data.partition_dirichlet(LABELS, 2, 1.0, max_tries=0), "max_tries"),
        (lambda: lk.data.partition(LABELS, 2, "pathological"), "scheme"),
        (lambda: lk.data.label_counts(LABELS, [np.arange(3)], 3), "labels"),
        (lambda: lk.data.label_counts(LABELS, [np.array([40])]), "partitions[0]"),
        (lambda: lk.data.label_counts(LABELS, [np.array([0.5])]), "partitions[0]"),
        (lambda: lk.data.label_counts(LABELS, []), "partitions"),
        (lambda: lk.data.label_counts(LABELS, [np.arange(3)], 0), "num_classes"),
    ],
)
def test_partitions_refuse(call, name):
    named(name, call)


@pytest.mark.parametrize("scheme", ["iid", "shards", "dirichlet"])
def test_partitions_cover_every_example_once_with_numpy_counts(scheme):
    kwargs = {"alpha": 1.0} if scheme == "dirichlet" else {}
    parts = lk.data.partition(LABELS, np.int64(4), scheme, seed=np.int64(0), **kwargs)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(LABELS)))
    counts = lk.data.label_counts(LABELS, parts, np.int64(4))
    assert counts.sum() == len(LABELS) and counts.shape == (4, 4)


# --- the FL loop ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    model = lk.models.build_model("logistic", (3,), 2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    return model, x, np.array([0, 1] * 4)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"clients": "ab"}, "clients"),
        ({"clients": []}, "clients"),
        ({"clients": [(0, 1, 2)]}, "clients[0]"),
        ({"labels": np.array([0, 2] * 4)}, "clients[0] labels"),  # label >= num_classes
        ({"labels": np.array([0, 1] * 3)}, "clients[0] labels"),
        ({"labels": np.array([0.5] * 8)}, "clients[0] labels"),
        ({"x": np.full((8, 3), np.nan)}, "clients[0] inputs"),
        ({"x": np.ones((8, 4))}, "clients[0] inputs"),  # wrong feature count
        ({"x": np.ones((8, 3)) * 1j}, "clients[0] inputs"),
        ({"num_rounds": 0}, "num_rounds"),
        ({"num_rounds": 1.0}, "num_rounds"),
        ({"client_fraction": 0}, "client_fraction"),
        ({"client_fraction": 1.5}, "client_fraction"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"learning_rate": "0.1"}, "learning_rate"),
        ({"local_epochs": 0}, "local_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"aggregator": "mean"}, "aggregator"),
        ({"vectorize": "yes"}, "vectorize"),
        ({"test_data": "x"}, "test_data"),
        ({"test_data": "given", "test_labels": np.array([0, 5])}, "test_data labels"),
        ({"target_accuracy": 1.5, "test_data": "given"}, "target_accuracy"),
        ({"target_accuracy": 0.5}, "test_data"),
    ],
)
def test_fedavg_refuses(tiny, change, name):
    model, x, y = tiny
    x, y = change.pop("x", x), change.pop("labels", y)
    kwargs = {"clients": change.pop("clients", [(x, y)]), "num_rounds": 1, **change}
    if kwargs.get("test_data") == "given":
        kwargs["test_data"] = (x[:2], change.pop("test_labels", y[:2]))
        kwargs.pop("test_labels", None)
    named(name, lk.fl.fedavg, model, **kwargs)


def test_fedavg_takes_numpy_integers(tiny):
    model, x, y = tiny
    history = lk.fl.fedavg(
        model, [(x, y), (x, y)], np.int64(1), local_epochs=np.int32(1), batch_size=np.int64(4),
        test_data=(x, y),
    )  # fmt: skip
    assert history.rounds == [1]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: lk.fl.num_sampled_clients(0, 0.5), "num_clients"),
        (lambda: lk.fl.num_sampled_clients(10, math.nan), "client_fraction"),
        (lambda: lk.fl.client_datasets(np.ones((4, 1)), [0, 1, 0, 1], []), "partitions"),
        (lambda: lk.fl.client_datasets(np.ones((4, 1)), [0, 1, 0, 1], [[9]]), "partitions[0]"),
        (lambda: lk.fl.client_datasets(np.ones((4, 1)), [0, 1, 0], [[0]]), "y"),
    ],
)
def test_fl_helpers_refuse(call, name):
    named(name, call)


# --- results ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "name"),
    [
        ("", "results file"),
        ("{not json", "results file"),
        ('{"meta": 5, "rows": []}', "meta of results file"),
        ('{"meta": [1], "rows": []}', "meta of results file"),
    ],
)
def test_results_name_the_broken_file(tmp_path, content, name):
    (tmp_path / "x.json").write_text(content)
    err = named(name + f" {tmp_path / 'x.json'}", lk.results.load_meta, "x", tmp_path)
    assert isinstance(err, lk.results.ResultsError)


@pytest.mark.parametrize(
    "content", ['{"meta": {}, "rows": 5}', '{"meta": {}, "rows": [1, 2]}', "7", '"rows"']
)
def test_load_rows_refuses_malformed_rows(tmp_path, content):
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(lk.results.ResultsError, match=str(tmp_path / "x.json")):
        lk.results.load_rows("x", tmp_path)


@pytest.mark.parametrize("name", ["", None, "../x", "x.json", "a/b", 5])
def test_results_refuse_bad_names(tmp_path, name):
    named("name", lk.results.load_results, name, tmp_path)


@pytest.mark.parametrize("results_dir", [5, b"dir", ["a"]])
def test_results_refuse_bad_folders(results_dir):
    named("results_dir", lk.results.load_results, "x", results_dir)


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("dpsgd_mnist", [{"epsilon": 1.0}]),  # no test_accuracy
        ("dpsgd_mnist", [{"epsilon": "1", "test_accuracy": 0.9, "delta": 1e-5}]),
        (
            "he_aggregation",
            [
                {
                    "table": "aggregation",
                    "seconds_total": 1.0,
                    "scheme": "paillier",
                    "packed": True,
                    "exact": True,
                }
            ],
        ),  # fmt: skip
        (
            "fedavg_rounds",
            [
                {"model": "2nn", "scheme": "iid", "method": "FedSGD", "rounds": "9"},
                {"model": "2nn", "scheme": "iid", "method": "FedAvg", "E": 5, "rounds": 3},
            ],
        ),  # fmt: skip
    ],
)
def test_cost_summary_names_malformed_rows(tmp_path, name, rows):
    (tmp_path / f"{name}.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    err = named(f"results behind {name}", lk.results.cost_summary, tmp_path)
    assert isinstance(err, lk.results.ResultsError)


def test_results_folder_from_argument_env_or_source(tmp_path, monkeypatch):
    (tmp_path / "x.json").write_text('{"meta": {"mode": "full"}, "rows": [{"a": 1}]}')
    monkeypatch.delenv(lk.results.RESULTS_ENV, raising=False)
    assert lk.results.results_folder() == lk.results.RESULTS_DIR
    assert lk.results.load_rows("x") == []  # not in the source tree's folder
    monkeypatch.setenv(lk.results.RESULTS_ENV, str(tmp_path))
    assert lk.results.results_folder() == tmp_path
    assert lk.results.load_rows("x") == [{"a": 1}]
    assert lk.results.load_meta("x") == {"mode": "full"}
    assert lk.results.load_rows("x", tmp_path / "elsewhere") == []  # the argument wins


@pytest.mark.parametrize(
    ("rows", "columns", "precision", "name"),
    [
        ("rows", ["a"], 3, "rows"),
        ([1, 2], ["a"], 3, "rows"),
        ([{"a": 1}], "a", 3, "columns"),
        ([{"a": 1}], [1], 3, "columns"),
        ([{"a": 1}], ["a"], 0, "precision"),
        ([{"a": 1}], ["a"], 2.0, "precision"),
    ],
)
def test_show_table_refuses(rows, columns, precision, name):
    named(name, lk.results.show_table, rows, columns, precision)


def test_show_table_is_html_with_markdown_and_text_fallbacks():
    rows = [{"a": "<b>", "b": 0.123456, "c": None}]
    table = lk.results.show_table(rows, ["a", "b", "c"])
    markdown = lk.results.format_table(rows, ["a", "b", "c"])
    assert table.data == markdown == table._repr_markdown_() == repr(table)
    html = table._repr_html_()
    assert html.startswith("<table>") and "<th>a</th>" in html
    assert "<td>&lt;b&gt;</td><td>0.123</td><td>–</td>" in html  # escaped, same cells
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(table)
    assert {"text/html", "text/markdown", "text/plain"} <= set(data)


# --- DP-FedAvg's inputs (labkit.dp.fedavg) ----------------------------------------------------
def test_clip_update_of_huge_values_is_right_not_zero():
    from labkit.dp.fedavg import clip_update

    clipped, norm = clip_update([1e300, 1e300], 1.0)  # was zeros: the squared norm overflowed
    assert norm == pytest.approx(math.sqrt(2) * 1e300)
    assert clipped == pytest.approx([1 / math.sqrt(2)] * 2)
    assert clip_update([3.0, 4.0], 1.0)[0] == pytest.approx([0.6, 0.8])
    named("vector", clip_update, [1j, 1.0], 1.0)
    named("l2_norm_clip", clip_update, [1.0], 0.0)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((3e38, 1e300, 2), "noise_multiplier"),  # was inf noise
        ((1.0, -1.0, 2), "noise_multiplier"),
        ((1.0, math.nan, 2), "noise_multiplier"),
        ((0.0, 1.0, 2), "l2_norm_clip"),
        ((1e39, 1.0, 2), "l2_norm_clip"),
        (("1", 1.0, 2), "l2_norm_clip"),
        ((1.0, 1.0, 0), "clients_per_round"),
        ((1.0, 1.0, 2.0), "clients_per_round"),
    ],
)
def test_dpfedavg_aggregator_refuses(args, name):
    from labkit.dp import DPFedAvgAggregator

    named(name, DPFedAvgAggregator, *args)


@pytest.mark.parametrize("max_epsilon", [math.nan, -0.5, 0, "3", None, math.inf])
def test_dp_accuracy_loss_refuses_max_epsilon(tmp_path, max_epsilon):
    named("max_epsilon", lk.results.dp_accuracy_loss, max_epsilon, tmp_path)
