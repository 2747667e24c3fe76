"""A decision guide: which privacy techniques a scenario needs, and why (chapter 07)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from labkit._checks import ParameterError, check_bool, check_choice, check_float, check_int

__all__ = [
    "Scenario",
    "Recommendation",
    "recommend",
    "USER_DP_RISK",
    "RECORD_DP_RISK",
    "FEW_PARTIES",
]

FL, SECAGG, HE, DP_CENTRAL, DP_USER, DP_RECORD = (
    "federated learning",
    "secure aggregation (Paillier)",
    "homomorphic encryption of the computation",
    "differential privacy (DP-SGD)",
    "user-level differential privacy (DP-FedAvg)",
    "record-level differential privacy (DP-SGD at each party)",
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
    num_parties: how many parties hold the data (10 hospitals, 10^6 phones); None if unknown.
        User-level DP protects a whole party, so its price depends on this number.
    """

    data_distributed: bool
    untrusted_server: bool
    output_released: bool
    computation: str = "training"
    max_accuracy_loss: float | None = None
    num_parties: int | None = None

    def __post_init__(self):
        for name in ("data_distributed", "untrusted_server", "output_released"):
            object.__setattr__(self, name, check_bool(name, getattr(self, name)))
        check_choice("computation", self.computation, ("training", "statistics"))
        if self.max_accuracy_loss is not None:
            loss = check_float("max_accuracy_loss", self.max_accuracy_loss, 0.0, 1.0)
            object.__setattr__(self, "max_accuracy_loss", loss)
        if self.num_parties is not None:
            object.__setattr__(self, "num_parties", check_int("num_parties", self.num_parties, 1))


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


# Below this many parties the guide recommends record-level DP: in benchmarks/combining.py,
# DP-FedAvg at z=1 cost under one accuracy point with 1000 clients and several points with 100.
FEW_PARTIES = 1000

# What record-level DP at each party leaves open (the decision table of chapter 07).
RECORD_DP_RISK = (
    "record-level DP protects each record (patient), not a party: whether a party took part and "
    "what its aggregate statistics reveal stay open; epsilons of parties' shared records add up"
)

# What user-level DP leaves open, stated with every recommendation of it (chapters 05 and 07).
USER_DP_RISK = (
    "user-level DP protects a whole participant, and its price falls only with many "
    "participants: with few (a consortium of hospitals) a usable model carries a large epsilon "
    "(a weak bound) or loses much of its accuracy; the noise is added after aggregation, so the "
    "party that adds it sees the exact sum (central DP) unless clients add it (distributed DP)"
)


def _user_dp_evidence(rows: Sequence[dict], lead: str = "measured user-level DP") -> str:
    """One sentence of measured user-level DP costs, e.g. from lk.results.user_dp_costs()."""
    parts = []
    for r in rows:
        cost = (
            f"{r['points_lost']:.1f} accuracy points lost"
            if r.get("points_lost") is not None
            else "accounted, not trained"
        )
        parts.append(
            f"{r['num_clients']} clients ({r['clients_per_round']} per round): "
            f"epsilon {r['epsilon']:.3g}, {cost}"
        )
    return f"{lead}: " + "; ".join(parts)


def recommend(
    scenario: Scenario,
    dp_accuracy_loss: float | None = None,
    user_dp_costs: Sequence[dict] | None = None,
) -> Recommendation:
    """Recommend techniques for ``scenario``, with what each leaves open.

    Args:
        scenario: where the data is, whom it must not trust, whether the output is released.
        dp_accuracy_loss: a measured DP cost (accuracy fraction in [0, 1]) to hold against
            ``scenario.max_accuracy_loss``; None when not measured.
        user_dp_costs: measured user-level DP runs (rows with ``num_clients``,
            ``clients_per_round``, ``epsilon``, ``points_lost``, as returned by
            ``lk.results.user_dp_costs()``), quoted in the residual risk of DP-FedAvg.

    Returns:
        A Recommendation: techniques, reasons, residual risks and warnings.
    """
    if not isinstance(scenario, Scenario):
        raise ParameterError("scenario", scenario, "a labkit.guide.Scenario")
    if dp_accuracy_loss is not None:
        dp_accuracy_loss = check_float("dp_accuracy_loss", dp_accuracy_loss, 0.0, 1.0)
    techniques, reasons, risks, warnings = [], [], [], []
    training = scenario.computation == "training"
    few = scenario.num_parties is not None and scenario.num_parties < FEW_PARTIES

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
                    "cost: Paillier supports additions and plaintext scalings only, and an "
                    "encrypted sum is already thousands of times slower than a plain one "
                    "(chapter 04); training a non-linear model under HE is orders of magnitude "
                    "slower again: keep the encrypted part to sums and linear scoring, or train "
                    "on-premise"
                )
    if scenario.output_released:
        if scenario.data_distributed and training and few:
            techniques.append(DP_RECORD)
            reasons.append(
                f"the released model can reveal single records; {scenario.num_parties} parties "
                "are too few for user-level DP at a useful accuracy, so each party trains with "
                "DP-SGD on its own records and every update it sends is already DP"
            )
            risks.append(RECORD_DP_RISK)
            if user_dp_costs:
                lead = "why not user-level DP, measured"
                risks.append(_user_dp_evidence(user_dp_costs, lead))
        elif scenario.data_distributed and training:
            techniques.append(DP_USER)
            reasons.append(
                "the released model can reveal whether a participant took part: clip each "
                "client's update and add noise to the sum"
            )
            risks.append(USER_DP_RISK)
            if user_dp_costs:
                risks.append(_user_dp_evidence(user_dp_costs))
            if scenario.num_parties is None:
                warnings.append(
                    "the number of parties is unknown: user-level DP needs many (thousands); "
                    f"with fewer than {FEW_PARTIES}, protect the records at each party instead"
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
                f"the measured DP cost ({100 * dp_accuracy_loss:.2f} accuracy points) exceeds "
                f"the budget ({100 * scenario.max_accuracy_loss:.2f} points): use more data, a "
                f"larger epsilon, or accept the loss"
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
