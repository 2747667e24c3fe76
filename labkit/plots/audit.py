"""Chapter 03's audit figure: the empirical lower bound on epsilon beside the accountant's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from labkit.plots import _finish, new_figure

__all__ = ["audit_label", "plot_audit_bounds"]


def audit_label(row: Mapping) -> str:
    """Return a run's x-axis label: ``"non-private"`` or ``"ε = 2"`` (the target, 3 digits)."""
    eps = row.get("epsilon")
    return "non-private" if eps is None else f"ε = {eps:.3g}"


def plot_audit_bounds(rows: Sequence[Mapping], ax=None, title: str | None = None):
    """Per setting, the accountant's epsilon (upper bound) and each run's audited lower bound.

    ``rows`` are ``audit.json`` rows (``epsilon`` None for non-private, ``epsilon_lower_bound``,
    ``confidence``, optional ``seed``). Settings are ordered non-private first, then by falling
    epsilon; each seed's lower bound is a dot, their mean a bar; the gap between bar and
    upper-bound marker is what the attack could not show.
    """
    groups: dict[str, list[Mapping]] = {}
    order = sorted(rows, key=lambda r: -np.inf if r.get("epsilon") is None else -r["epsilon"])
    for r in order:
        groups.setdefault(audit_label(r), []).append(r)
    if ax is None:
        fig, ax = new_figure(figsize=(7.0, 3.8))
    else:
        fig = ax.figure
    xs = np.arange(len(groups))
    lows = [[r["epsilon_lower_bound"] for r in g] for g in groups.values()]
    ax.bar(
        xs,
        [np.mean(v) for v in lows],
        width=0.55,
        color="C0",
        alpha=0.6,
        label="audited lower bound (mean over runs)",
    )
    for x, v in zip(xs, lows, strict=True):
        ax.plot(np.full(len(v), x), v, "o", color="C0", markersize=4)
    uppers = [g[0].get("epsilon") for g in groups.values()]
    top = max([u for u in uppers if u is not None] + [max(map(max, lows)), 1.0]) * 1.15
    for x, u in zip(xs, uppers, strict=True):
        if u is None:
            ax.annotate("no upper bound", (x, top * 0.93), ha="center", fontsize=9, color="C3")
    shown = [(x, u) for x, u in zip(xs, uppers, strict=True) if u is not None]
    if shown:
        ax.plot(
            *zip(*shown, strict=True),
            "v",
            color="C3",
            markersize=9,
            label="accountant's ε (upper bound)",
        )
    confidence = {r.get("confidence") for r in rows}
    conf = f" at {confidence.pop():.0%} confidence" if len(confidence) == 1 else ""
    ax.set_xticks(xs, list(groups))
    ax.set_ylim(0, top)
    _finish(ax, "training run", f"ε{conf}", title)
    ax.legend(loc="upper right", fontsize=9)
    return fig, ax
