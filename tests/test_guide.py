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
