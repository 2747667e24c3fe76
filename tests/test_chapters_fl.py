"""Helpers behind chapters 02 and 05: display rows and figures built from recorded results."""

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pytest

import labkit as lk


@dataclass
class FakeHistory:
    method: str
    test_accuracy: list = field(default_factory=list)

    @property
    def rounds(self):
        return list(range(1, len(self.test_accuracy) + 1))

    @property
    def final_accuracy(self):
        return self.test_accuracy[-1]

    def rounds_to(self, target):
        return next(
            (r for r, a in zip(self.rounds, self.test_accuracy, strict=True) if a >= target), None
        )


def _row(method, k, acc, eps=None, z=None):
    return {
        "method": method,
        "num_clients": k,
        "clients_per_round": k // 10,
        "test_accuracy": acc,
        "epsilon": eps,
        "noise_multiplier": z,
        "seconds": 1.25,
        "bytes_up_per_client_per_round": 31400,
    }


COMBINING = [
    _row("FedAvg (plain)", 100, 0.92),
    _row("FedAvg + secure aggregation", 100, 0.92),
    _row("DP-FedAvg z=0.3", 100, 0.91, 83.5, 0.3),
    _row("DP-FedAvg z=1", 100, 0.87, 5.88, 1.0),
    _row("secure + DP-FedAvg z=1", 100, 0.80, 5.88, 1.0),
    _row("FedAvg (plain), 1000 clients", 1000, 0.89),
    _row("DP-FedAvg z=1, 1000 clients", 1000, 0.886, 5.88, 1.0),
    _row("FedAvg (plain), 50 clients", 50, 0.9),  # no DP row: left out
]


def test_history_rows_report_rounds_to_target_or_not_reached():
    rows = lk.results.history_rows(
        {("IID", "FedAvg"): FakeHistory("FedAvg", [0.5, 0.86, 0.9]),
         ("non-IID", "FedAvg"): FakeHistory("FedAvg", [0.5, 0.7])},
        0.85,
    )  # fmt: skip
    assert rows[0] == {
        "partition": "IID",
        "method": "FedAvg",
        "final accuracy": "0.900",
        "rounds to 85%": 2,
    }
    assert rows[1]["rounds to 85%"] == "not reached"
    assert rows[1]["final accuracy"] == "0.700"


def test_combining_rows_mark_missing_epsilon_and_format_bytes():
    rows = lk.results.combining_rows(COMBINING)
    assert rows[0]["epsilon"] == "–" and rows[3]["epsilon"] == "5.88"
    assert rows[0]["bytes up / client / round"] == "31,400"
    assert rows[0]["seconds"] == "1.2" or rows[0]["seconds"] == "1.3"
    table = lk.results.format_table(rows, list(rows[0]))
    assert table.count("\n") == len(COMBINING) + 1


def test_plot_rounds_curves_one_panel_per_model_and_partition():
    curve = [0.8, 0.9, 0.97]
    rows = [
        {"model": m, "partition": p, "method": method, "E": 1, "B": 10, "target": 0.97,
         "accuracy_curve": curve}
        for m, p, method in [("2nn", "iid", "FedAvg"), ("2nn", "non-iid", "FedAvg"),
                             ("cnn", "iid", "FedAvg"), ("2nn", "iid", "FedSGD")]
    ]  # fmt: skip
    fig, axes = lk.plots.plot_rounds_curves(rows)
    assert [ax.get_title() for ax in axes] == ["2nn, iid", "2nn, non-iid", "cnn, iid"]
    assert len(axes[0].lines) == 3  # two runs and the target line (drawn with axhline)
    assert axes[0].get_xscale() == "log"
    np.testing.assert_allclose(axes[0].get_ylim(), (0.80, 0.98))
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        lk.plots.plot_rounds_curves([])


def test_plot_variants_dashes_only_the_named_series():
    series = {"FedAvg": ([1, 2], [0.5, 0.6]), "FedAvg + secure": ([1, 2], [0.5, 0.6])}
    fig, ax = lk.plots.plot_variants(series, "round", "accuracy", ylim=(0.4, 0.7))
    styles = {line.get_label(): (line.get_linestyle(), line.get_linewidth()) for line in ax.lines}
    assert styles["FedAvg"][0] == "-"
    assert styles["FedAvg + secure"] == ("--", 2.5)
    assert ax.get_ylim() == (0.4, 0.7)
    plt.close(fig)


def test_plot_partition_run_draws_counts_and_accuracy():
    counts = np.array([[3, 0], [1, 2], [0, 4]])
    h, base = FakeHistory("FedAvg", [0.5, 0.7]), FakeHistory("FedAvg", [0.6, 0.8, 0.9])
    fig, (left, right) = lk.plots.plot_partition_run(counts, h, "alpha 0.1", baseline=base)
    assert left.get_title() == "alpha 0.1"
    assert len(left.patches) == counts.size  # one bar per client and label
    assert [line.get_label() for line in right.lines] == ["FedAvg", "IID"]
    np.testing.assert_array_equal(right.lines[1].get_ydata(), [0.6, 0.8])  # cut to 2 rounds
    plt.close(fig)


def test_plot_dp_run_draws_accuracy_and_one_bar_per_accountant():
    h, base = FakeHistory("FedAvg", [0.5, 0.6]), FakeHistory("FedAvg", [0.7, 0.8])
    fig, (left, right) = lk.plots.plot_dp_run(h, base, {"rdp": 3.9, "pld": 3.2}, 1.0, 10)
    assert [line.get_label() for line in left.lines] == [
        "FedAvg (no DP)",
        "DP-FedAvg z=1, 10 per round",
    ]
    assert [p.get_height() for p in right.patches] == [3.9, 3.2]
    assert [t.get_text() for t in right.get_xticklabels()] == ["RDP", "PLD"]
    plt.close(fig)
