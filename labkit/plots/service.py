"""Figures of the model-service chapter, drawn from ``model_service`` result rows."""

from __future__ import annotations

import numpy as np

from labkit.plots import _finish, new_figure

__all__ = [
    "MODE_LABELS",
    "summarise",
    "plot_fine_tuning",
    "plot_query_log",
]

MODE_LABELS = {
    "nonprivate": "fine-tune, no DP",
    "full": "DP fine-tune, whole model",
    "head": "DP fine-tune, head only",
    "scratch": "DP from scratch",
    "pretrained": "pretrained only",
}


def summarise(rows: list[dict], table: str, key: str, group: tuple[str, ...]) -> dict:
    """Return ``{group values: (mean, std over seeds, n)}`` of ``key`` for the rows of ``table``."""
    out: dict = {}
    for r in rows:
        if r.get("table") == table:
            out.setdefault(tuple(r[g] for g in group), []).append(float(r[key]))
    return {
        k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
        for k, v in out.items()
    }


def plot_fine_tuning(rows: list[dict], key: str = "perplexity", ax=None, title=None):
    """Plot ``key`` (perplexity or max_exposure) against the target epsilon, one line per mode,
    error bars = one standard deviation over seeds; non-private and pretrained-only as lines."""
    fig, ax = new_figure() if ax is None else (ax.figure, ax)
    stats = summarise(rows, "fine_tune", key, ("mode", "target_epsilon"))
    for mode in ("full", "head", "scratch"):
        pts = sorted((e, m, s) for (md, e), (m, s, _) in stats.items() if md == mode)
        if pts:
            e, m, s = map(np.array, zip(*pts, strict=True))
            ax.errorbar(e, m, yerr=s, marker="o", capsize=3, label=MODE_LABELS[mode])
    for mode, style in (("nonprivate", "--"), ("pretrained", ":")):
        if (mode, None) in stats:
            ax.axhline(stats[(mode, None)][0], linestyle=style, color="grey", linewidth=1)
            ax.annotate(MODE_LABELS[mode], (0.99, stats[(mode, None)][0]), ha="right",
                        va="bottom", xycoords=("axes fraction", "data"), color="grey",
                        fontsize=9)  # fmt: skip
    ax.set_xscale("log")
    ticks = sorted({e for (_, e) in stats if e is not None})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ylabel = {
        "perplexity": "private-domain perplexity",
        "max_exposure": "max canary exposure (bits)",
    }
    _finish(ax, "target epsilon (per chunk, same delta)", ylabel.get(key, key), title)
    return fig, ax


def plot_query_log(rows: list[dict], ax=None, title=None):
    """Plot top-k recall of the query log against epsilon, central vs local DP (mean, std)."""
    fig, ax = new_figure() if ax is None else (ax.figure, ax)
    stats = summarise(rows, "query_log", "recall", ("method", "epsilon"))
    labels = {"central": "central DP (partition selection)", "local": "local DP (OLH)"}
    for method in ("central", "local"):
        pts = sorted((e, m, s) for (md, e), (m, s, _) in stats.items() if md == method)
        if pts:
            e, m, s = map(np.array, zip(*pts, strict=True))
            ax.errorbar(e, m, yerr=s, marker="o", capsize=3, label=labels[method])
    ax.set_xscale("log")
    ticks = sorted({e for (_, e) in stats})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.05, 1.05)
    _finish(ax, "epsilon (per user)", "recall of the true top-k", title)
    return fig, ax
