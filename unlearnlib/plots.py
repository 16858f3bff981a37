"""Figures the notebooks share, on matplotlib and seaborn."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .imagedata import DatasetInfo, Split
from .mia import AttackROC
from .train import History


def as_picture(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A ``[C, H, W]`` image as something ``imshow`` draws: ``[H, W]`` for one channel, ``[H, W, C]`` else."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def show_image(ax: Axes, image: torch.Tensor | np.ndarray, title: str | None = None, **imshow) -> None:
    """Draw one ``[C, H, W]`` image (grey colour map for one channel) without axes."""
    picture = as_picture(image)
    if picture.ndim == 2:
        imshow.setdefault("cmap", "gray")
    if picture.dtype == np.uint8:
        imshow.setdefault("vmin", 0)
        imshow.setdefault("vmax", 255)
    ax.imshow(picture, **imshow)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def image_grid(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.2,
    suptitle: str | None = None,
) -> Figure:
    """A grid of ``[N, C, H, W]`` images, with an optional title under each."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            show_image(ax, images[i], titles[i] if titles is not None else None)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_grid(split: Split, info: DatasetInfo, per_class: int = 8, seed: int = 0) -> Figure:
    """``per_class`` random examples of each class, one row per class, labelled by class name."""
    generator = torch.Generator().manual_seed(seed)
    labels = split.labels.cpu()
    fig, axes = plt.subplots(
        info.num_classes, per_class, figsize=(per_class * 0.9, info.num_classes * 0.9), squeeze=False
    )
    for cls, row in enumerate(axes):
        members = (labels == cls).nonzero().squeeze(1)
        chosen = members[torch.randperm(len(members), generator=generator)[:per_class]]
        for ax, index in zip(row, chosen.tolist() + [None] * per_class):
            if index is None:
                ax.axis("off")
            else:
                show_image(ax, split.images[index])
        row[0].set_ylabel(info.classes[cls], rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{info.name}: {per_class} random training images per class")
    fig.tight_layout()
    return fig


def class_counts(train: Split, test: Split, info: DatasetInfo) -> Figure:
    """Bar chart of the number of images per class in each split."""
    fig, ax = plt.subplots(figsize=(max(6, info.num_classes * 0.7), 3.5))
    positions = np.arange(info.num_classes)
    for offset, (name, split) in zip((-0.2, 0.2), (("train", train), ("test", test))):
        counts = torch.bincount(split.labels.cpu(), minlength=info.num_classes).numpy()
        ax.bar(positions + offset, counts, width=0.4, label=f"{name} ({len(split)})")
    ax.set_xticks(positions, info.classes, rotation=45, ha="right")
    ax.set_ylabel("images")
    ax.set_title(f"{info.name}: images per class")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
    ax.legend(ncol=2, loc="upper center")
    fig.tight_layout()
    return fig


def training_curves(history: History, title: str = "training") -> Figure:
    """Loss and accuracy per epoch, on the training batches and on the test set (a fixed sample of it after each
    epoch but the last: :attr:`~unlearnlib.train.History.test_accuracy`)."""
    frame = history.to_frame()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(frame.index, frame.train_loss, "o-", label="train batches")
    left.plot(frame.index, frame.test_loss, "s-", label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", yscale="log", title=f"{title}: loss")
    right.plot(frame.index, frame.train_accuracy, "o-", label="train batches")
    right.plot(frame.index, frame.test_accuracy, "s-", label="test")
    right.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=f"{title}: accuracy")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: np.ndarray, classes: Sequence[str], title: str = "confusion matrix") -> Figure:
    """Heat map of a ``[true, predicted]`` count matrix, each row normalised to sum to 1."""
    rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = max(5, len(classes) * 0.55)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    sns.heatmap(
        rows,
        annot=len(classes) <= 12,
        fmt=".2f",
        cmap="Blues",
        vmin=0,
        vmax=1,
        xticklabels=classes,
        yticklabels=classes,
        ax=ax,
        cbar_kws={"label": "share of the true class"},
    )
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.tight_layout()
    return fig


def per_class_bars(values: np.ndarray, classes: Sequence[str], ylabel: str, title: str) -> Figure:
    """One bar per class, with the mean as a dashed line."""
    fig, ax = plt.subplots(figsize=(max(6, len(classes) * 0.7), 3.5))
    ax.bar(np.arange(len(classes)), values)
    ax.axhline(np.nanmean(values), color="k", ls="--", lw=1, label=f"mean {np.nanmean(values):.3f}")
    ax.set_xticks(np.arange(len(classes)), classes, rotation=45, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def overlaid_histograms(
    ax: Axes,
    groups: dict[str, np.ndarray | torch.Tensor],
    xlabel: str,
    title: str,
    *,
    log_x: bool = False,
    density: bool = False,
) -> None:
    """Histograms of several groups (e.g. forget set against test set) on shared bins; counts, or densities."""
    values = {name: np.asarray(torch.as_tensor(v).cpu(), dtype=float) for name, v in groups.items()}
    everything = np.concatenate(list(values.values()))
    if log_x:
        positive = everything[everything > 0]
        bins = np.geomspace(max(positive.min(), 1e-8), positive.max(), 40)
        ax.set_xscale("log")
    else:
        bins = np.linspace(everything.min(), everything.max(), 40)
    for name, v in values.items():
        ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, density=density, alpha=0.5, label=f"{name} (n={len(v)})")
    ax.set(xlabel=xlabel, ylabel="density" if density else "examples", title=title)
    ax.legend()


def roc_curves(rocs: dict[str, AttackROC], title: str = "membership inference ROC") -> Figure:
    """ROC curves of attacks on log-log axes, where the low false-positive rates that matter are visible."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    floor = min(1 / roc.n_nonmembers for roc in rocs.values()) / 2
    for name, roc in rocs.items():
        ax.plot(np.maximum(roc.fpr, floor), np.maximum(roc.tpr, floor), label=f"{name} (AUC {roc.auc:.2f})")
    grid = np.geomspace(floor, 1, 100)
    ax.plot(grid, grid, "k--", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05), title=title)
    ax.set(xlabel="false-positive rate (non-members called members)", ylabel="true-positive rate (members found)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


REFERENCE_STYLES = (("k", "--"), ("C3", ":"), ("C7", "-."))
"""Colour and line style of the first, second and third reference drawn by :func:`sweep_lines`."""


def sweep_lines(
    frame: pd.DataFrame,
    x: str,
    columns: dict[str, str],
    *,
    hue: str | None = "method",
    label: str | None = None,
    row: str | None = None,
    references: dict[str, pd.DataFrame | pd.Series] | None = None,
    colors: dict[str, str] | None = None,
    xlabel: str | None = None,
    xscale: str = "linear",
    title: str | None = None,
) -> Figure:
    """Each of ``columns`` (name: axis label) against swept variable ``x``: measures against what was changed.

    One line per value of ``hue`` (or, with ``hue=None``, one line named ``label``); with ``row``,
    one row of panels per value of that column.  ``references`` (name: what to compare with) are drawn
    in black dashes, then red dots, then grey dash-dots: a row (a ``pd.Series``, such as the original's
    or the retrained model's ``evaluate`` row) as a horizontal line, a frame with ``x``, the columns and,
    with ``row``, the row column as a line, such as the clean model that a repair should reach.
    ``colors`` fixes each ``hue`` value's colour, so that a method keeps its colour from figure to figure.
    Panels whose values are all shares (in [0, 1]) share the axis 0..1.  A column with a spread over the
    models (``<column>_std``, as :func:`~unlearnlib.metrics.evaluate` gives) gets error bars of ± one std.
    """
    if hue is None:
        frame = frame.assign(_line=label or "")
        hue = "_line"
    rows = list(dict.fromkeys(frame[row])) if row else [None]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(4.2 * len(columns), 3.2 * len(rows)), squeeze=False)
    styles = colors or dict(zip(dict.fromkeys(frame[hue]), sns.color_palette(n_colors=frame[hue].nunique())))
    for i, value in enumerate(rows):
        part = frame if row is None else frame[frame[row] == value]
        for j, (column, axis_label) in enumerate(columns.items()):
            ax = axes[i, j]
            for name, group in part.groupby(hue, sort=False):
                group = group.sort_values(x)
                ax.plot(group[x], group[column], "o-", color=styles[name], label=str(name))
                if f"{column}_std" in group:
                    spread = group[f"{column}_std"]
                    ax.errorbar(group[x], group[column], yerr=spread, fmt="none", capsize=3, ecolor=styles[name])
            drawn = [part[column]]
            for (name, reference), (color, style) in zip((references or {}).items(), REFERENCE_STYLES):
                if isinstance(reference, pd.Series):
                    ax.axhline(reference[column], color=color, ls=style, lw=1, label=name)
                    drawn.append(pd.Series([reference[column]]))
                    continue
                ref = reference if row is None else reference[reference[row] == value]
                ref = ref.sort_values(x)
                ax.plot(ref[x], ref[column], style, color=color, label=name)
                drawn.append(ref[column])
            values = pd.concat(drawn)
            if values.between(0, 1).all():
                ax.set_ylim(-0.02, 1.02)
            ax.set(xlabel=xlabel or x.replace("_", " "), ylabel=axis_label, xscale=xscale)
            if row is not None:
                ax.set_title(f"{row.replace('_', ' ')} = {value}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


PIPELINE = (
    ("training set $D$", "images and labels"),
    ("original model", r"$\theta^* = A(D)$"),
    ("forget request", r"$D_f \subset D$, $D_r = D \setminus D_f$"),
    ("unlearning method", r"$\theta^u = U(\theta^*, D_f, D_r)$"),
    ("measures", "accuracy, MIA, F"),
)
"""The course's pipeline, left to right: each stage and what it holds."""


def pipeline(title: str = "The course's pipeline: every unlearning method is judged against retraining") -> Figure:
    """The course as one figure: data, original model, request, unlearning method, and the measures that compare
    the unlearned models with models retrained on the retain set alone (the gold standard, drawn below)."""
    fig, ax = plt.subplots(figsize=(12, 3.4))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.4)
    ax.axis("off")
    boxes = dict(boxstyle="round,pad=0.4", facecolor="#eef3fb", edgecolor="#35608f")
    centres = [1.0 + 2.0 * i for i in range(len(PIPELINE))]
    for x, (name, holds) in zip(centres, PIPELINE):
        ax.text(x, 2.4, f"{name}\n{holds}", ha="center", va="center", fontsize=10, bbox=boxes)
    for left, right in zip(centres, centres[1:]):
        ax.annotate("", xy=(right - 0.78, 2.4), xytext=(left + 0.78, 2.4), arrowprops=dict(arrowstyle="->"))
    gold = dict(boxstyle="round,pad=0.4", facecolor="#fdf1e3", edgecolor="#b5651d")
    ax.text(
        5.0,
        0.6,
        "retrained models (gold standard)\n" + r"$A(D_r)$: trained as if $D_f$ had never existed",
        ha="center",
        va="center",
        fontsize=10,
        bbox=gold,
    )
    dashed = dict(arrowstyle="->", linestyle="--")
    ax.annotate("", xy=(4.4, 1.0), xytext=(centres[2], 1.95), arrowprops=dashed)  # retrain without D_f
    ax.annotate("", xy=(centres[4], 1.95), xytext=(5.6, 1.0), arrowprops=dashed)  # compared with the unlearned
    ax.set_title(title)
    return fig
