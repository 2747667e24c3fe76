"""Figures of the language-model chapter, drawn from ``language_models`` result rows."""

from __future__ import annotations

import math

from labkit.plots import new_figure, plot_bars, plot_lines

__all__ = [
    "parse_setting",
    "select",
    "plot_exposure_vs_epochs",
    "plot_exposure_vs_insertions",
    "final_dp_exposure",
    "plot_dp_exposure",
    "plot_federated",
]


def parse_setting(setting: str) -> dict:
    """Return ``{"key": value}`` from a row's ``"key=value key=value"`` setting string.

    Numbers become int/float unless that would change their text ("0697" stays a string),
    ``None`` becomes None (e.g. a target never reached); a quoted value may hold spaces
    (``prefix="anne's pin is "``).
    """
    pairs: list[list[str]] = []
    for part in setting.split(" "):
        if "=" in part and not (pairs and pairs[-1][1][:1] in "\"'" and not _closed(pairs[-1][1])):
            pairs.append(part.split("=", 1))
        elif pairs:
            pairs[-1][1] += " " + part
    out = {}
    for k, v in pairs:
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            out[k] = v[1:-1]
            continue
        out[k] = None if v == "None" else v
        for cast in (int, float):
            try:
                if str(cast(v)) == v:
                    out[k] = cast(v)
                    break
            except ValueError:
                pass
    return out


def _closed(value: str) -> bool:
    return len(value) >= 2 and value[-1] == value[0]


def select(rows: list[dict], experiment: str, **where) -> list[dict]:
    """Return the rows of ``experiment`` whose setting has every ``key=value`` of ``where``,
    each with its parsed setting under ``"s"``."""
    out = []
    for r in rows:
        if r["experiment"] != experiment:
            continue
        s = parse_setting(r["setting"])
        if all(s.get(k) == v for k, v in where.items()):
            out.append({**r, "s": s})
    return out


def _space_bits(rows, meta_space: int | None) -> dict:
    return {"log2 |R| (most exposed)": math.log2(meta_space)} if meta_space else {}


def plot_exposure_vs_epochs(rows: list[dict], space: int | None = None, insertions=None, ax=None):
    """Exposure of each canary after every epoch of non-private training."""
    series = {}
    for r in select(rows, "exposure_vs_epochs"):
        k = r["s"]["insertions"]
        if insertions is not None and k not in insertions:
            continue
        xs, ys = series.setdefault(f"{k} insertions", ([], []))
        xs.append(r["s"]["epoch"])
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
    last = max(r["s"]["epoch"] for r in select(rows, "exposure_vs_epochs"))
    pts = sorted(
        (r["s"]["insertions"], r["exposure"])
        for r in select(rows, "exposure_vs_epochs", epoch=last)
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


def final_dp_exposure(rows: list[dict]) -> dict[tuple[float, int], dict]:
    """Return the last-epoch ``dp_exposure`` row per (noise multiplier, insertions)."""
    final: dict = {}
    for r in select(rows, "dp_exposure"):
        key = (r["s"]["noise_multiplier"], r["s"]["insertions"])
        if key not in final or r["s"]["epoch"] > final[key]["s"]["epoch"]:
            final[key] = r
    return final


def plot_dp_exposure(rows: list[dict], insertions: int, chance_level: float = 0.01):
    """Exposure of one canary and held-out perplexity: non-private vs DP-SGD at each epsilon.

    The dashed line is the exposure that chance exceeds with probability ``chance_level`` over
    all the canaries (a random candidate reaches x bits with probability 2^-x): below it, the
    canary is not told apart from a random candidate.
    """
    from labkit.attacks.exposure import chance_exposure  # (TensorFlow only when drawn)

    final = final_dp_exposure(rows)
    ordered = [r for (_, k), r in final.items() if k == insertions]
    ordered.sort(key=lambda r: -(r["epsilon"] or math.inf))
    labels = ["no DP" if r["epsilon"] is None else f"ε = {r['epsilon']:.2g}" for r in ordered]
    fig, axes = new_figure(ncols=2)
    plot_bars(
        dict(zip(labels, [r["exposure"] for r in ordered], strict=True)),
        "exposure (bits)",
        f"Canary inserted {insertions}x",
        ax=axes[0],
    )
    chance = chance_exposure(len({k for _, k in final}), chance_level)
    axes[0].axhline(chance, color="0.4", ls="--", lw=1, label=f"chance, {chance_level:.0%} level")
    axes[0].legend(loc="upper right")
    plot_bars(
        dict(zip(labels, [r["perplexity"] for r in ordered], strict=True)),
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
        s = dict(r["s"])
        rnd = s.pop("round")
        name = ", ".join(f"{v}" for v in s.values())
        xs, ys = series.setdefault(name, ([], []))
        xs.append(rnd)
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
