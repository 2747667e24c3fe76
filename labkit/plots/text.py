"""Figures of the language-model chapter, drawn from ``language_models`` result rows."""

from __future__ import annotations

import math

from labkit.plots import new_figure, plot_bars, plot_lines

__all__ = [
    "select",
    "plot_exposure_vs_epochs",
    "plot_exposure_vs_insertions",
    "final_dp_exposure",
    "dp_exposure_summary",
    "plot_dp_exposure",
    "plot_federated",
]


def select(rows: list[dict], experiment: str, **where) -> list[dict]:
    """Return the rows of ``experiment`` whose fields equal every ``key=value`` of ``where``."""
    return [
        r
        for r in rows
        if r.get("experiment") == experiment and all(r.get(k) == v for k, v in where.items())
    ]


def _space_bits(rows, meta_space: int | None) -> dict:
    return {"log2 |R| (most exposed)": math.log2(meta_space)} if meta_space else {}


def plot_exposure_vs_epochs(rows: list[dict], space: int | None = None, insertions=None, ax=None):
    """Exposure of each canary after every epoch of non-private training."""
    series = {}
    for r in select(rows, "exposure_vs_epochs", seed=0):
        k = r["insertions"]
        if insertions is not None and k not in insertions:
            continue
        xs, ys = series.setdefault(f"{k} insertions", ([], []))
        xs.append(r["epoch"])
        ys.append(r["exposure"])
    return plot_lines(
        series,
        "epoch",
        "exposure (bits)",
        "Exposure while training (no DP)",
        hlines=_space_bits(rows, space),
        ax=ax,
        marker="o",
    )


def plot_exposure_vs_insertions(rows: list[dict], space: int | None = None, ax=None):
    """Exposure after the last epoch against the number of insertions (log axis)."""
    last = max(r["epoch"] for r in select(rows, "exposure_vs_epochs"))
    pts = sorted(
        (r["insertions"], r["exposure"])
        for r in select(rows, "exposure_vs_epochs", epoch=last, seed=0)
    )
    series = {f"after {last} epochs": ([p[0] for p in pts], [p[1] for p in pts])}
    return plot_lines(
        series,
        "insertions of the canary",
        "exposure (bits)",
        "More copies, more memorisation",
        logx=True,
        hlines=_space_bits(rows, space),
        ax=ax,
        marker="o",
    )


def final_dp_exposure(rows: list[dict]) -> dict[tuple[float, int, int], dict]:
    """Return the last-epoch ``dp_exposure`` row per (noise multiplier, insertions, seed)."""
    final: dict = {}
    for r in select(rows, "dp_exposure"):
        key = (r["noise_multiplier"], r["insertions"], r.get("seed", 0))
        if key not in final or r["epoch"] > final[key]["epoch"]:
            final[key] = r
    return final


def dp_exposure_summary(rows: list[dict], insertions: int) -> list[dict]:
    """Final exposure of one canary over the seeds of each run, most private last.

    One dict per noise multiplier (0 = no DP): ``epsilon`` (the accountant's, None without DP),
    ``exposures`` (one per seed, in seed order), their ``mean``, ``low`` and ``high``, the mean
    held-out ``perplexity`` and the number of ``seeds``.
    """
    groups: dict[float, list[dict]] = {}
    for (z, k, _), r in sorted(final_dp_exposure(rows).items()):
        if k == insertions:
            groups.setdefault(z, []).append(r)
    out = []
    for z, runs in groups.items():
        xs = [r["exposure"] for r in runs]
        out.append(
            {
                "noise_multiplier": z,
                "epsilon": runs[0]["epsilon"],
                "exposures": xs,
                "mean": sum(xs) / len(xs),
                "low": min(xs),
                "high": max(xs),
                "perplexity": sum(r["perplexity"] for r in runs) / len(runs),
                "seeds": len(runs),
            }
        )
    out.sort(key=lambda g: -(g["epsilon"] or math.inf))
    return out


def plot_dp_exposure(rows: list[dict], insertions: int, chance_level: float = 0.01):
    """Exposure of one canary and held-out perplexity: non-private vs DP-SGD at each epsilon.

    Bars are means over the seeds, whiskers their range and dots the single runs. The dashed
    line is the exposure that chance exceeds with probability ``chance_level`` over all the
    canaries (a random candidate reaches x bits with probability 2^-x): below it, the canary is
    not told apart from a random candidate.
    """
    from labkit.attacks.exposure import chance_exposure  # (TensorFlow only when drawn)

    groups = dp_exposure_summary(rows, insertions)
    labels = [
        ("no DP" if g["epsilon"] is None else f"ε = {g['epsilon']:.2g}")
        + f"\n{g['seeds']} run"
        + ("s" if g["seeds"] > 1 else "")
        for g in groups
    ]
    fig, axes = new_figure(ncols=2)
    plot_bars(
        dict(zip(labels, [g["mean"] for g in groups], strict=True)),
        "exposure (bits)",
        f"Canary inserted {insertions}x",
        ax=axes[0],
    )
    xs = range(len(groups))
    lo = [g["mean"] - g["low"] for g in groups]
    hi = [g["high"] - g["mean"] for g in groups]
    axes[0].errorbar(xs, [g["mean"] for g in groups], yerr=[lo, hi], fmt="none", color="0.2")
    for x, g in zip(xs, groups, strict=True):
        axes[0].plot([x] * len(g["exposures"]), g["exposures"], "o", color="0.2", ms=3)
    canaries = len({k for _, k, _ in final_dp_exposure(rows)})
    chance = chance_exposure(canaries, chance_level)
    axes[0].axhline(chance, color="0.4", ls="--", lw=1, label=f"chance, {chance_level:.0%} level")
    axes[0].legend(loc="upper right")
    plot_bars(
        dict(zip(labels, [g["perplexity"] for g in groups], strict=True)),
        "held-out perplexity (per char)",
        "Utility",
        ax=axes[1],
    )
    fig.tight_layout()
    return fig, axes


def plot_federated(rows: list[dict], target: float | None = None, ax=None):
    """Test accuracy per round of federated next-character prediction, by setting."""
    series = {}
    for r in select(rows, "federated"):
        name = f"partition={r['partition']}" + (f", {r['dp']}" if r.get("dp") else "")
        xs, ys = series.setdefault(name, ([], []))
        xs.append(r["round"])
        ys.append(r["accuracy"])
    hl = {f"target {target:.0%}": target} if target else None
    return plot_lines(
        series,
        "round",
        "test accuracy (next character)",
        "Shakespeare, one client per role",
        hlines=hl,
        ax=ax,
    )
