"""The decision guide encodes the threat models of chapter 01."""

import numpy as np
import pytest

import labkit as lk
from labkit._checks import ParameterError
from labkit.guide import DP_CENTRAL, DP_RECORD, DP_USER, FL, HE, SECAGG


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        (dict(data_distributed=False, untrusted_server=False, output_released=False), ()),
        (dict(data_distributed=False, untrusted_server=False, output_released=True), (DP_CENTRAL,)),
        (dict(data_distributed=True, untrusted_server=False, output_released=False), (FL,)),
        (
            dict(data_distributed=True, untrusted_server=True, output_released=True),
            (FL, SECAGG, DP_USER),
        ),
        (
            dict(
                data_distributed=False,
                untrusted_server=True,
                output_released=False,
                computation="statistics",
            ),
            (HE,),
        ),
        (
            dict(
                data_distributed=True,
                untrusted_server=True,
                output_released=False,
                computation="statistics",
            ),
            (SECAGG,),
        ),
    ],
)
def test_recommendations_follow_the_threat_model(kwargs, expected):
    assert lk.guide.recommend(lk.guide.Scenario(**kwargs)).techniques == expected


def test_unprotected_output_is_reported_as_open_risk():
    rec = lk.guide.recommend(lk.guide.Scenario(True, True, False))
    assert any("nothing bounds what the output reveals" in r for r in rec.residual_risks)
    assert "still open" in str(rec)


def test_dp_budget_warning_uses_the_measured_cost():
    s = lk.guide.Scenario(False, False, True, max_accuracy_loss=0.005)
    assert lk.guide.recommend(s, dp_accuracy_loss=0.01).warnings
    assert not lk.guide.recommend(s, dp_accuracy_loss=0.001).warnings
    assert not lk.guide.recommend(s).warnings  # no measurement, no claim


def test_he_training_warns_about_cost():
    rec = lk.guide.recommend(lk.guide.Scenario(False, True, False, computation="training"))
    assert rec.techniques == (HE,) and "orders of magnitude" in rec.warnings[0]
    assert rec.warnings[0].startswith("cost:")


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(computation="inference"), "computation"),
        (dict(computation=None), "computation"),
        (dict(max_accuracy_loss=5), "max_accuracy_loss"),
        (dict(max_accuracy_loss=-0.1), "max_accuracy_loss"),
        (dict(max_accuracy_loss=float("nan")), "max_accuracy_loss"),
        (dict(max_accuracy_loss="0.1"), "max_accuracy_loss"),
        (dict(num_parties=float("inf")), "num_parties"),
        (dict(num_parties="10"), "num_parties"),
    ],
)
def test_bad_scenarios_are_refused_by_name(kwargs, name):
    with pytest.raises(ParameterError, match=f"^{name} must be"):
        lk.guide.Scenario(True, True, True, **kwargs)


@pytest.mark.parametrize("bad", ["no", "yes", "", None, 0, 1, 1.0, [True], np.array([True])])
@pytest.mark.parametrize("field", ["data_distributed", "untrusted_server", "output_released"])
def test_threat_model_answers_must_be_booleans(field, bad):
    """Scenario('no', 'no', 'no') once recommended all three techniques; None recommended none."""
    answers = dict(data_distributed=True, untrusted_server=False, output_released=True)
    with pytest.raises(ParameterError, match=f"^{field} must be True or False"):
        lk.guide.Scenario(**(answers | {field: bad}))


def test_numpy_booleans_and_integers_are_accepted():
    s = lk.guide.Scenario(np.bool_(True), np.bool_(True), np.bool_(True), num_parties=np.int64(10))
    assert s.data_distributed is True and s.num_parties == 10 and type(s.num_parties) is int
    assert lk.guide.recommend(s).techniques == (FL, SECAGG, DP_RECORD)


@pytest.mark.parametrize("bad", [float("nan"), -0.5, 1.5, float("inf"), "0.01", True])
def test_bad_measured_dp_loss_is_refused_by_name(bad):
    s = lk.guide.Scenario(False, False, True, max_accuracy_loss=0.005)
    with pytest.raises(ParameterError, match="^dp_accuracy_loss must be a finite number in"):
        lk.guide.recommend(s, dp_accuracy_loss=bad)


def test_recommend_needs_a_scenario():
    with pytest.raises(ParameterError, match="^scenario must be a labkit.guide.Scenario"):
        lk.guide.recommend((True, True, True))


def test_user_level_dp_always_states_its_residual_risk():
    """Recommending DP-FedAvg never comes without what it leaves open (few users, central noise)."""
    rec = lk.guide.recommend(lk.guide.Scenario(True, True, True))
    assert DP_USER in rec.techniques
    assert lk.guide.USER_DP_RISK in rec.residual_risks
    assert "central DP" in lk.guide.USER_DP_RISK and "distributed DP" in lk.guide.USER_DP_RISK
    # Record-level DP on one party's data is not user-level DP: no such risk is claimed there.
    rec = lk.guide.recommend(lk.guide.Scenario(False, False, True))
    assert lk.guide.USER_DP_RISK not in rec.residual_risks


def test_user_level_dp_quotes_the_measured_costs():
    costs = [
        {"num_clients": 100, "clients_per_round": 10, "epsilon": 5.88, "points_lost": 4.64},
        {"num_clients": 100, "clients_per_round": 100, "epsilon": 57.3, "points_lost": None},
    ]
    rec = lk.guide.recommend(lk.guide.Scenario(True, True, True), user_dp_costs=costs)
    quoted = [r for r in rec.residual_risks if r.startswith("measured user-level DP")]
    assert len(quoted) == 1
    assert "100 clients (10 per round): epsilon 5.88, 4.6 accuracy points lost" in quoted[0]
    assert "epsilon 57.3, accounted, not trained" in quoted[0]


def test_few_parties_get_record_level_dp_as_the_decision_table_says():
    """Chapter 07's table: few parties -> DP-SGD at each party; many -> DP-FedAvg."""
    few = lk.guide.recommend(lk.guide.Scenario(True, True, True, num_parties=10))
    assert few.techniques == (FL, SECAGG, DP_RECORD)
    assert lk.guide.RECORD_DP_RISK in few.residual_risks
    assert lk.guide.USER_DP_RISK not in few.residual_risks
    assert any("10 parties are too few" in r for r in few.reasons)
    many = lk.guide.recommend(lk.guide.Scenario(True, True, True, num_parties=10**6))
    assert many.techniques == (FL, SECAGG, DP_USER) and not many.warnings
    edge = lk.guide.Scenario(True, True, True, num_parties=lk.guide.FEW_PARTIES)
    assert DP_USER in lk.guide.recommend(edge).techniques
    unknown = lk.guide.recommend(lk.guide.Scenario(True, True, True))
    assert DP_USER in unknown.techniques and "unknown" in unknown.warnings[0]


def test_few_parties_quote_why_user_level_dp_was_not_chosen():
    costs = [{"num_clients": 100, "clients_per_round": 100, "epsilon": 57.3, "points_lost": None}]
    rec = lk.guide.recommend(
        lk.guide.Scenario(True, True, True, num_parties=10), user_dp_costs=costs
    )
    lead = "why not user-level DP, measured: 100 clients"
    assert any(r.startswith(lead) for r in rec.residual_risks)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_parties_is_refused(bad):
    with pytest.raises(ParameterError, match="num_parties must be an integer >= 1"):
        lk.guide.Scenario(True, True, True, num_parties=bad)
