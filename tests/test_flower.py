"""The Flower app in simulation: parity with labkit's loop, DP and SecAgg+ variants, bad input.

Without flwr installed the whole module is skipped. The gRPC deployment and its faults are in
``test_flower_deployment.py`` (a file of its own, so pytest-xdist runs it beside this one).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "flower_app"))

import labkit as lk  # noqa: E402
from labkit_flower.engine import labkit_loop, simulate  # noqa: E402
from labkit_flower.task import TaskConfig, TaskConfigError, round_plan  # noqa: E402

# A small model, few clients, few rounds: the same task in every test below.
SMALL = TaskConfig(num_clients=4, client_fraction=0.5, num_rounds=3, num_train=1200, num_test=500)


def test_bad_settings_name_the_parameter():
    with pytest.raises(ValueError, match=r"client_fraction must be a finite number in \(0, 1\]"):
        TaskConfig(client_fraction=1.5)
    with pytest.raises(ValueError, match="privacy must be one of"):
        TaskConfig(privacy="dp-magic")
    with pytest.raises(ValueError, match="num_clients must be an integer >= 1"):
        TaskConfig(num_clients=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"small": "no"}, "small"),  # a non-empty string is truthy: never read it as a bool
        ({"small": 1}, "small"),
        ({"learning_rate": "0.1"}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"num_rounds": 2.5}, "num_rounds"),
        ({"num_clients": True}, "num_clients"),
        ({"noise_multiplier": -0.1}, "noise_multiplier"),
        ({"round_timeout": float("inf")}, "round_timeout"),
        ({"model": None}, "model"),
    ],
)
def test_hostile_settings_are_named_errors(kwargs, name):
    with pytest.raises(lk._checks.ParameterError) as err:
        TaskConfig(**kwargs)
    assert err.value.name == name


def test_settings_are_normalised():
    cfg = TaskConfig(num_clients=np.int64(3), learning_rate=1, small=np.bool_(False))
    assert type(cfg.num_clients) is int and type(cfg.learning_rate) is float
    assert cfg.small is False


def test_run_config_is_parsed_strictly():
    assert TaskConfig.from_run_config({"small": "False", "num-rounds": 2.0}).small is False
    cfg = TaskConfig.from_run_config({"small": "yes", "learning-rate": 1, "num-rounds": 2.0})
    assert cfg.small is True and cfg.learning_rate == 1.0 and cfg.num_rounds == 2
    with pytest.raises(lk._checks.ParameterError, match="small must be a bool") as err:
        TaskConfig.from_run_config({"small": "ture"})
    assert err.value.value == "ture"
    with pytest.raises(lk._checks.ParameterError, match="learning_rate"):
        TaskConfig.from_run_config({"learning-rate": "0.1"})


def _reply(arrays, metrics, node=7):
    from types import SimpleNamespace

    from flwr.app import ArrayRecord, MetricRecord

    content = {}
    if arrays is not None:
        content["arrays"] = ArrayRecord([np.asarray(a, dtype=np.float32) for a in arrays])
    if metrics is not None:
        content["metrics"] = MetricRecord(metrics)
    return SimpleNamespace(content=content, metadata=SimpleNamespace(src_node_id=node))


def test_replies_the_strategy_cannot_use_are_named_errors():
    from labkit_flower.server_app import ReplyError, _read_reply

    current = [np.zeros((2, 3), np.float32), np.ones(3, np.float32)]
    good = [np.full((2, 3), 0.5), np.full(3, 3.0)]
    update, n = _read_reply(_reply(good, {"num-examples": 4}), current)
    assert n == 4
    np.testing.assert_array_equal(update[0], np.full((2, 3), 0.5))
    np.testing.assert_array_equal(update[1], np.full(3, 2.0))  # trained - global
    bad = {
        "shapes": (_reply([np.zeros((3, 2)), np.zeros(3)], {"num-examples": 4}), "shapes"),
        "count": (_reply([np.zeros(3)], {"num-examples": 4}), "shapes"),
        "nan": (_reply([np.full((2, 3), np.nan), np.zeros(3)], {"num-examples": 4}), "NaN"),
        "no arrays": (_reply(None, {"num-examples": 4}), "arrays"),
        "no metrics": (_reply(good, None), "num-examples"),
        "zero": (_reply(good, {"num-examples": 0}), "num-examples"),
        "float": (_reply(good, {"num-examples": 2.5}), "num-examples"),
    }
    for case, (reply, text) in bad.items():
        with pytest.raises(ReplyError, match=text) as err:
            _read_reply(reply, current)
        assert "node 7" in str(err.value), case
        assert isinstance(err.value, lk._checks.ParameterError)


def test_round_plan_is_labkits_schedule():
    """The ServerApp's plan is fedavg's draws: one generator, m clients then a seed each."""
    cfg = SMALL.replace(num_clients=10, client_fraction=0.3)
    rng = lk.config.make_rng(cfg.seed)  # an independent replay of the documented order
    for chosen, seeds in round_plan(cfg, num_rounds=4):
        want = np.sort(rng.choice(10, size=3, replace=False))
        assert chosen == list(want)
        assert seeds == [int(rng.integers(2**31)) for _ in want]


def test_round_plan_draws_labkit_samples():
    """The server's sample of clients is the one lk.fl.sample_clients draws from that generator."""
    cfg = SMALL.replace(num_clients=10, client_fraction=0.3)
    chosen, seeds = next(round_plan(cfg))
    assert chosen == list(lk.fl.sample_clients(10, 0.3, seed=cfg.seed))
    assert len(seeds) == 3 and len(set(seeds)) == 3


def test_empty_partition_is_refused_before_the_run():
    parts = [np.arange(0, 400), np.arange(400, 800), np.array([], dtype=int), np.arange(800, 1200)]
    with pytest.raises(TaskConfigError, match=r"partitions\[2\] must be non-empty"):
        simulate(SMALL, partitions=parts)


@pytest.fixture(scope="module")
def plain():
    return simulate(SMALL)


def test_simulation_matches_labkit_loop(plain):
    history, _ = labkit_loop(SMALL)
    assert plain.error is None and plain.rounds == [1, 2, 3]
    assert plain.test_accuracy[0] == history.test_accuracy[0]  # round 1: exactly
    np.testing.assert_allclose(plain.test_loss, history.test_loss, rtol=1e-5)
    assert abs(plain.test_accuracy[-1] - history.test_accuracy[-1]) <= 1 / SMALL.num_test
    assert plain.test_accuracy[-1] > plain.initial_accuracy + 0.3  # it did learn


def test_simulation_counts_model_sized_uploads(plain):
    model_bytes = 4 * (784 * 64 + 64 + 64 * 10 + 10)  # the small 2NN in float32
    per_client_round = plain.bytes_up / (SMALL.num_rounds * SMALL.clients_per_round)
    assert model_bytes <= per_client_round < 1.05 * model_bytes


def test_flower_client_side_clipping_limits_each_update(plain):
    """A tiny clip through Flower's fixedclipping_mod (no noise) keeps the model near its start."""
    rec = simulate(SMALL.replace(privacy="dp-client", l2_norm_clip=1e-4, num_rounds=2))
    assert rec.error is None
    assert abs(rec.test_accuracy[-1] - rec.initial_accuracy) < 0.05
    assert plain.test_accuracy[1] - rec.test_accuracy[-1] > 0.3


def test_flower_server_side_dp_adds_noise():
    base = SMALL.replace(client_fraction=1.0, num_rounds=1, l2_norm_clip=10.0)
    clean = simulate(base.replace(privacy="dp-server"))
    noisy = simulate(base.replace(privacy="dp-server", noise_multiplier=5.0))
    assert clean.error is None and noisy.error is None
    assert noisy.test_loss[0] > clean.test_loss[0] + 0.5  # std 5 * 10 / 4 per weight


def test_secagg_plus_gives_labkits_mean_up_to_quantisation():
    cfg = SMALL.replace(client_fraction=1.0, num_rounds=2)
    rec = simulate(cfg, variant="secagg")
    history, _ = labkit_loop(cfg)
    assert rec.error is None and rec.rounds == [1, 2]
    np.testing.assert_allclose(rec.test_loss, history.test_loss, rtol=1e-3)
    plain_bytes = 4 * (784 * 64 + 64 + 64 * 10 + 10)
    # Masked integers are wider than float32, and the key exchange adds messages.
    assert rec.bytes_up / (2 * cfg.num_clients) > plain_bytes


def test_secagg_needs_every_client():
    with pytest.raises(TaskConfigError, match="client_fraction must be 1.0 for SecAgg+"):
        simulate(SMALL, variant="secagg")
