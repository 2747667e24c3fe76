"""One style for every figure in the workbook; every function returns ``(fig, ax)``.

Chapter 08's figures, drawn with these helpers: ``labkit.plots.text``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from labkit._checks import ParameterError
from labkit._lazy import lazy_submodules

__all__ = [
    "STYLE",
    "MIN_FONT",
    "MAX_WIDTH",
    "use_style",
    "new_figure",
    "plot_lines",
    "plot_label_distribution",
    "plot_images",
    "plot_tradeoff",
    "plot_histograms",
    "plot_roc",
    "plot_bars",
]

# A figure is shown at most as wide as the book's text column (about 740 px at 1280 px) and
# drawn at figure.dpi (100), so text of f points in a figure w inches wide reads at about
# f * 740 / (72 * w) px: 9 pt in 8 in gives 11.6 px. Text under 9 pt, or figures wider than
# MAX_WIDTH, come out under 9 px on the website (tests/test_book.py measures it in a browser).
MIN_FONT = 9
MAX_WIDTH = 8.0

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.frameon": False,
    "font.size": 10,
    "xtick.labelsize": MIN_FONT,
    "ytick.labelsize": MIN_FONT,
    "legend.fontsize": MIN_FONT,
    "legend.title_fontsize": MIN_FONT,
    "axes.prop_cycle": mpl.cycler(
        color=[
            "#0072B2",
            "#D55E00",
            "#009E73",
            "#CC79A7",
            "#E69F00",
            "#56B4E9",
            "#F0E442",
            "#000000",
        ]
    ),  # Okabe-Ito: distinguishable for colour-blind readers
}


def use_style() -> None:
    """Apply the workbook's matplotlib style globally."""
    mpl.rcParams.update(STYLE)


def new_figure(ncols: int = 1, nrows: int = 1, **kwargs):
    """Return ``(fig, ax)`` in the workbook style (``ax`` is an array when there are several)."""
    use_style()
    if ncols * nrows > 1 and "figsize" not in kwargs:
        kwargs["figsize"] = (4.2 * ncols, 3.4 * nrows)
    if "figsize" in kwargs and kwargs["figsize"][0] > MAX_WIDTH:
        # Wider figures are shrunk on the page and their text with them (see MAX_WIDTH).
        kwargs["figsize"] = (MAX_WIDTH, kwargs["figsize"][1])
    return plt.subplots(nrows, ncols, **kwargs)


def _finish(ax, xlabel, ylabel, title, legend=True):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend()


def plot_lines(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
    ax=None,
    marker: str | None = None,
):
    """Plot named ``(x, y)`` series as lines, with optional labelled horizontal references."""
    fig, ax = new_figure() if ax is None else (ax.figure, ax)
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label, marker=marker)
    for label, value in (hlines or {}).items():
        ax.axhline(value, linestyle="--", color="grey", linewidth=1)
        ax.annotate(
            label,
            (0.99, value),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            color="grey",
            fontsize=MIN_FONT,
        )
    if logx:
        ax.set_xscale("log")
        # Two significant digits: 0.4995 and 0.5 are one tick, not two overlapping labels.
        xs = sorted({float(f"{v:.2g}") for x, _ in series.values() for v in np.ravel(x) if v > 0})
        if 0 < len(xs) <= 8:  # few points: label them, not the decades between them
            ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    if logy:
        ax.set_yscale("log")
    _finish(ax, xlabel, ylabel, title)
    return fig, ax


def plot_label_distribution(
    counts: np.ndarray, title: str | None = None, max_clients: int = 30, ax=None
):
    """Draw stacked bars of label counts per client from a ``(num_clients, num_classes)`` matrix."""
    counts = np.asarray(counts)[:max_clients]
    fig, ax = new_figure(figsize=(7.0, 3.6)) if ax is None else (ax.figure, ax)
    cmap = plt.get_cmap("tab10" if counts.shape[1] <= 10 else "tab20")
    bottom = np.zeros(len(counts))
    clients = np.arange(len(counts))
    for c in range(counts.shape[1]):
        ax.bar(
            clients, counts[:, c], bottom=bottom, color=cmap(c % cmap.N), label=str(c), width=0.85
        )
        bottom += counts[:, c]
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))  # clients are whole
    ax.legend(title="label", ncol=2, fontsize=MIN_FONT, bbox_to_anchor=(1.01, 1), loc="upper left")
    _finish(ax, "client", "examples (count)", title, legend=False)
    return fig, ax


def plot_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = "gray_r",
):
    """Show a row (or grid) of images with optional titles."""
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure(ncols, nrows, figsize=(1.8 * ncols, 2.0 * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            img = np.asarray(images[i])
            side = int(round(np.sqrt(img.size)))
            ax.imshow(img.reshape(side, side) if img.ndim == 1 else img.squeeze(), cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=MIN_FONT)
    return fig, axes


def plot_tradeoff(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str = "privacy loss ε (lower is more private)",
    ylabel: str = "test accuracy",
    title: str | None = None,
    reference: Mapping[str, float] | None = None,
    logx: bool = True,
    ax=None,
):
    """Plot privacy–utility curves (marked lines), with horizontal reference levels."""
    return plot_lines(
        points, xlabel, ylabel, title=title, logx=logx, hlines=reference, ax=ax, marker="o"
    )


def plot_histograms(
    samples: Mapping[str, Sequence[float]],
    xlabel: str,
    title: str | None = None,
    bins: int | Sequence[float] = 40,
    density: bool = True,
    ax=None,
):
    """Overlay histograms of named samples (e.g. member vs non-member losses)."""
    fig, ax = new_figure() if ax is None else (ax.figure, ax)
    for label, values in samples.items():
        ax.hist(np.asarray(values), bins=bins, alpha=0.55, density=density, label=label)
    _finish(ax, xlabel, "density" if density else "count", title)
    return fig, ax


def plot_roc(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str | None = None,
    log: bool = False,
    ax=None,
):
    """Plot ROC curves given as ``{label: (fpr, tpr)}`` with the chance diagonal."""
    fig, ax = new_figure(figsize=(4.6, 4.2)) if ax is None else (ax.figure, ax)
    for label, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=label)
    lo = 1e-4 if log else 0.0
    ax.plot([lo, 1], [lo, 1], linestyle=":", color="grey", label="chance")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
    _finish(ax, "false positive rate", "true positive rate", title)
    return fig, ax


def plot_bars(
    values: Mapping[str, float],
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    annotate: str | None = "{:.3g}",
    ax=None,
    horizontal: bool = False,
):
    """Draw one bar per named value, annotated; ``horizontal`` suits long names."""
    names = list(values)
    if horizontal:  # long names on the left would widen the figure past the page (MAX_WIDTH)
        names = [textwrap.fill(k, 26) for k in values]
        values = dict(zip(names, values.values(), strict=True))
    if ax is None:
        size = (5.6, 0.5 * len(names) + 1.2) if horizontal else None
        fig, ax = new_figure(figsize=size) if size else new_figure()
    else:
        fig = ax.figure
    heights = [values[k] for k in names]
    colors = [STYLE["axes.prop_cycle"].by_key()["color"][i % 8] for i in range(len(names))]
    if horizontal:
        bars = ax.barh(names, heights, color=colors)
        ax.invert_yaxis()  # first name on top, as it reads
        ax.grid(axis="y", visible=False)
    else:
        bars = ax.bar(names, heights, color=colors)
        ax.tick_params(axis="x", labelrotation=20)
    if annotate:
        ax.bar_label(
            bars, labels=[annotate.format(h) for h in heights], fontsize=MIN_FONT, padding=2
        )
    if logy:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
    if horizontal:
        _finish(ax, ylabel, "", title, legend=False)
    else:
        _finish(ax, "", ylabel, title, legend=False)
    return fig, ax


# --- chapters 00, 01, 06, 07 -------------------------------------------------------------------
__all__ += ["plot_membership", "plot_marked_bars"]


def plot_membership(member_losses, nonmember_losses, audit, eps: float = 1e-8):
    """Two panels: log-loss histograms of members vs non-members, and the attack's ROC curve.

    ``audit`` is a ``MembershipAudit`` (``fpr``, ``tpr``, ``auc``); returns ``(fig, axes)``.
    """
    fig, axes = new_figure(2)
    plot_histograms(
        {
            "members (trained on)": np.log10(np.asarray(member_losses) + eps),
            "non-members": np.log10(np.asarray(nonmember_losses) + eps),
        },
        xlabel="log10 cross-entropy loss",
        title="The model knows its training set",
        ax=axes[0],
    )
    plot_roc(
        {f"loss threshold (AUC {audit.auc:.2f})": (audit.fpr, audit.tpr)},
        title="Membership inference",
        ax=axes[1],
    )
    fig.tight_layout()
    return fig, axes


def plot_marked_bars(
    values: Mapping[str, float], marked: Sequence[str], ylabel: str, mark: str, **kwargs
):
    """Horizontal log bars like ``plot_bars``; bars named in ``marked`` are hatched and their
    labels end with `` (mark)``, e.g. values extrapolated rather than measured."""
    labels = {(f"{k} ({mark})" if k in marked else k): v for k, v in values.items()}
    fig, ax = plot_bars(labels, ylabel, horizontal=True, logy=True, **kwargs)
    for patch, name in zip(ax.patches, values, strict=True):
        if name in marked:
            patch.set_hatch("//")
            patch.set_alpha(0.5)
    return fig, ax


# --- chapters 02 and 05 (federated learning, combining) -----------------------------------


__all__ += ["plot_rounds_curves", "plot_variants", "plot_partition_run", "plot_dp_run"]


def plot_rounds_curves(rows: Sequence[Mapping], logx: bool = True):
    """Plot ``fedavg_rounds`` rows: one panel per (model, partition), accuracy against round.

    Each panel marks the row's target accuracy; a run stops at its target, so curves end there.
    Returns ``(fig, axes)`` with one axis per panel.
    """
    panels = sorted({(r["model"], r["partition"]) for r in rows})
    if not panels:
        raise ParameterError("rows", rows, "at least one fedavg_rounds row")
    fig, axes = new_figure(len(panels), 1, figsize=(3.4 * len(panels), 3.6), squeeze=False)
    for ax, (model_name, part) in zip(axes[0], panels, strict=True):
        chosen = [r for r in rows if (r["model"], r["partition"]) == (model_name, part)]
        target = chosen[0]["target"]
        series = {
            f"{r['method']} E={r['E']} B={r['B']}": (
                np.arange(1, len(r["accuracy_curve"]) + 1),
                r["accuracy_curve"],
            )
            for r in chosen
        }
        hline = {f"{target:.0%} target": target}
        title = f"{model_name}, {part}"
        plot_lines(series, "communication round", "test accuracy", title, logx, hlines=hline, ax=ax)
        ax.set_ylim(target - 0.17, target + 0.01)
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig, axes[0]


def plot_variants(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    dashed: str = "secure",
    ylim: tuple[float, float] | None = None,
    ax=None,
):
    """``plot_lines``, with every series whose name contains ``dashed`` drawn dashed and wider.

    Two variants that give the same curve (FedAvg with and without secure aggregation) then
    both stay visible: the dashed one lies on top and the other shows through its gaps.
    """
    fig, ax = plot_lines(series, xlabel, ylabel, title=title, ax=ax)
    for line in ax.lines:
        if dashed and dashed in line.get_label():
            line.set_linestyle((0, (2, 2)))
            line.set_linewidth(2.5)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=MIN_FONT)
    return fig, ax


def plot_partition_run(counts: np.ndarray, history, title: str, baseline=None):
    """Left: label counts per client (``plot_label_distribution``); right: accuracy per round.

    ``history`` (and the optional ``baseline``) are ``labkit.fl.FLHistory``-like objects with
    ``rounds``, ``test_accuracy`` and ``method``; the baseline is drawn dashed in grey.
    """
    fig, (left, right) = new_figure(2, 1, figsize=(10.5, 3.6))
    plot_label_distribution(counts, title=title, ax=left)
    series = {history.method: (history.rounds, history.test_accuracy)}
    plot_lines(series, "communication round", "test accuracy", title="short FedAvg run", ax=right)
    if baseline is not None:  # drawn only over the rounds the run covers
        last = max(history.rounds)
        shown = list(zip(baseline.rounds, baseline.test_accuracy, strict=True))
        xs, ys = zip(*[(r, a) for r, a in shown if r <= last], strict=True)
        right.plot(xs, ys, "--", color="grey", label="IID")
        right.legend()
    fig.tight_layout()
    return fig, (left, right)


def plot_dp_run(history, baseline, epsilons: Mapping[str, float], noise_multiplier, per_round):
    """Left: a DP-FedAvg run's accuracy per round beside ``baseline``; right: its ε per accountant.

    ``history`` and ``baseline`` are ``FLHistory``-like (``rounds``, ``test_accuracy``);
    ``epsilons`` maps an accountant's name (``"rdp"``, ``"pld"``) to the run's epsilon.
    """
    fig, (left, right) = new_figure(2, 1, figsize=(10.0, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    series = {
        "FedAvg (no DP)": (baseline.rounds, baseline.test_accuracy),
        f"DP-FedAvg z={noise_multiplier:g}, {per_round} per round": (
            history.rounds,
            history.test_accuracy,
        ),
    }
    plot_lines(series, "communication round", "test accuracy", title="accuracy", ax=left)
    bars = {name.upper(): value for name, value in epsilons.items()}
    plot_bars(bars, "user-level ε", title="privacy loss (lower: more private)", ax=right)
    return fig, (left, right)


# --- chapters 03 and 04: the knobs' figures ---

__all__ += ["plot_laplace_release", "plot_log_ratios", "plot_packing_cost"]


def plot_laplace_release(
    epsilon: float,
    categories: Sequence[str],
    true_counts: Sequence[int],
    released: Sequence[int],
    sensitivity: float = 1.0,
):
    """Draw the Laplace noise density at ``epsilon`` and each category's relative error.

    Left: the density of Lap(sensitivity / epsilon), with the scale b marked. Right: the released
    histogram's |released - true| / true per category (log scale), one bar each.
    """
    b = sensitivity / epsilon
    fig, (left, right) = new_figure(ncols=2, figsize=(9.0, 3.4))
    z = np.linspace(-8 * b, 8 * b, 401)
    left.plot(z, np.exp(-np.abs(z) / b) / (2 * b), label=f"Laplace, b = {b:.3g}")
    left.axvspan(-b, b, alpha=0.15, color="grey")
    _finish(left, "noise added to a count", "probability density", f"ε = {epsilon:g}")
    true_counts, released = np.asarray(true_counts, float), np.asarray(released, float)
    rel = np.maximum(np.abs(released - true_counts) / true_counts, 1e-6)  # 0 would vanish on log
    right.barh(list(categories), rel, color=STYLE["axes.prop_cycle"].by_key()["color"][1])
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlim(1e-6, 1.0)
    _finish(right, "relative error of the released count", "", "one release", legend=False)
    fig.tight_layout()
    return fig, (left, right)


def plot_log_ratios(values, log_ratio, low, high, epsilon: float, ax=None):
    """Plot sampled log-probability ratios with confidence intervals against the +-epsilon band."""
    fig, ax = new_figure(figsize=(6.0, 3.2)) if ax is None else (ax.figure, ax)
    values, log_ratio = np.asarray(values), np.asarray(log_ratio)
    err = np.vstack([log_ratio - np.asarray(low), np.asarray(high) - log_ratio])
    ax.errorbar(values, log_ratio, yerr=err, fmt="o", capsize=3, label="sampled, 95% interval")
    ax.axhspan(-epsilon, epsilon, alpha=0.15, color="grey", label=f"|log ratio| <= ε = {epsilon:g}")
    _finish(ax, "released value", "log P[M(D) = o] / P[M(D') = o]", None)
    return fig, ax


def plot_packing_cost(
    num_clients: Sequence[int],
    bytes_per_value: Mapping[str, Sequence[float]],
    seconds: Mapping[str, Sequence[float]],
    title: str | None = None,
):
    """Two panels against the number of clients: bytes per value, and seconds per update."""
    fig, (left, right) = new_figure(ncols=2, figsize=(9.0, 3.4))
    for label, y in bytes_per_value.items():
        left.plot(num_clients, y, marker="o", label=label)
    for label, y in seconds.items():
        right.plot(num_clients, y, marker="o", label=label)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    left.set_yscale("log")
    _finish(left, "number of clients (headroom)", "bytes sent per value", title)
    _finish(right, "number of clients (headroom)", "seconds to encrypt one update", None)
    fig.tight_layout()
    return fig, (left, right)


_submodule = lazy_submodules(__name__, {"text", "knobs", "audit"})  # 08, knob widgets, 03's audit


def __getattr__(name: str):
    if name == "knob":  # ipywidgets loads only when a chapter builds a knob
        from labkit.plots.knobs import knob

        return knob
    return _submodule(name)
