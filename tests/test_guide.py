"""The decision guide encodes the threat models of chapter 01."""

import pytest

import labkit as lk
from labkit.guide import DP_CENTRAL, DP_USER, FL, HE, SECAGG


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


def test_bad_scenarios_are_refused():
    with pytest.raises(ValueError, match="computation must be 'training' or 'statistics'"):
        lk.guide.Scenario(True, True, True, computation="inference")
    with pytest.raises(ValueError, match=r"max_accuracy_loss must be in \[0, 1\]"):
        lk.guide.Scenario(True, True, True, max_accuracy_loss=5)


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


def test_few_parties_are_pointed_to_record_level_dp():
    few = lk.guide.Scenario(True, True, True, num_parties=10)
    many = lk.guide.Scenario(True, True, True, num_parties=lk.guide.FEW_PARTIES)
    assert any("10 parties are few" in w for w in lk.guide.recommend(few).warnings)
    assert not lk.guide.recommend(many).warnings
    assert not lk.guide.recommend(lk.guide.Scenario(True, True, True)).warnings  # unknown


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_parties_is_refused(bad):
    with pytest.raises(ValueError, match="num_parties must be an integer >= 1"):
        lk.guide.Scenario(True, True, True, num_parties=bad)
