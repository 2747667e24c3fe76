"""A decision guide: which privacy techniques a scenario needs, and why (chapter 07)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Scenario", "Recommendation", "recommend"]

FL, SECAGG, HE, DP_CENTRAL, DP_USER = (
    "federated learning",
    "secure aggregation (Paillier)",
    "homomorphic encryption of the computation",
    "differential privacy (DP-SGD)",
    "user-level differential privacy (DP-FedAvg)",
)


@dataclass(frozen=True)
class Scenario:
    """What a project must protect: where the data is and whom it must not trust.

    data_distributed: the records are held by several parties that may not pool them.
    untrusted_server: the party that computes (trains, aggregates) must not see individual
        records or individual parties' contributions.
    output_released: the model or statistics reach people who are not trusted (published
        weights, a public API, other participants).
    computation: ``"training"`` (fit a model) or ``"statistics"`` (sums, means, counts).
    max_accuracy_loss: accuracy (fraction, e.g. 0.01) the project can give up for privacy;
        None when it does not matter.
    """

    data_distributed: bool
    untrusted_server: bool
    output_released: bool
    computation: str = "training"
    max_accuracy_loss: float | None = None

    def __post_init__(self):
        if self.computation not in ("training", "statistics"):
            raise ValueError(
                f"computation must be 'training' or 'statistics', got {self.computation!r}"
            )
        if self.max_accuracy_loss is not None and not 0.0 <= self.max_accuracy_loss <= 1.0:
            raise ValueError(
                f"max_accuracy_loss must be in [0, 1] or None, got {self.max_accuracy_loss}"
            )


@dataclass(frozen=True)
class Recommendation:
    """Techniques to combine, why each is there, and what remains unprotected."""

    techniques: tuple[str, ...]
    reasons: tuple[str, ...]
    residual_risks: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        lines = ["use: " + (" + ".join(self.techniques) or "no privacy technique needed")]
        lines += [f"  why: {r}" for r in self.reasons]
        lines += [f"  still open: {r}" for r in self.residual_risks]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def recommend(scenario: Scenario, dp_accuracy_loss: float | None = None) -> Recommendation:
    """Recommend techniques for ``scenario``; ``dp_accuracy_loss`` is a measured DP cost."""
    techniques, reasons, risks, warnings = [], [], [], []
    training = scenario.computation == "training"

    if scenario.data_distributed and training:
        techniques.append(FL)
        reasons.append("the data may not leave its owners: train where it lives, share updates")
    if scenario.untrusted_server:
        if scenario.data_distributed:
            techniques.append(SECAGG)
            reasons.append(
                "one party's update (or statistic) reveals its data to the server "
                "(label and gradient leakage): let the server see only the sum"
            )
        else:
            techniques.append(HE)
            reasons.append("the computing party may not read the data: it computes on ciphertexts")
            if training:
                warnings.append(
                    "Paillier supports additions and plaintext scalings only: training a "
                    "non-linear model under HE is orders of magnitude slower; keep the "
                    "encrypted part to sums and linear scoring, or train on-premise"
                )
    if scenario.output_released:
        if scenario.data_distributed and training:
            techniques.append(DP_USER)
            reasons.append(
                "the released model can reveal whether a participant took part: clip each "
                "client's update and add noise to the sum"
            )
        else:
            techniques.append(DP_CENTRAL if training else "differential privacy (mechanisms)")
            reasons.append(
                "the released output can reveal single records (membership inference): "
                "bound every record's influence with calibrated noise"
            )
        if (
            dp_accuracy_loss is not None
            and scenario.max_accuracy_loss is not None
            and dp_accuracy_loss > scenario.max_accuracy_loss
        ):
            warnings.append(
                f"the measured DP cost ({dp_accuracy_loss:.1%} accuracy) exceeds the budget "
                f"({scenario.max_accuracy_loss:.1%}): use more data, a larger epsilon, or "
                f"accept the loss"
            )
    else:
        risks.append(
            "nothing bounds what the output reveals; safe only while the output stays with "
            "parties who may see the data"
        )
    if scenario.untrusted_server and not scenario.output_released:
        risks.append("the aggregate itself (sum or final model) is still visible to its holder")
    if not techniques:
        reasons.append("one trusted party holds the data and keeps the output: security suffices")
    return Recommendation(tuple(techniques), tuple(reasons), tuple(risks), tuple(warnings))
