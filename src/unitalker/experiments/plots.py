"""The experiments' plots (matplotlib is optional: without it, no plot and a warning)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _pyplot(path: Path) -> Any | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return plt


def bars(rows: dict[str, dict[str, float]], cols: list[str], path: Path, title: str) -> None:
    plt = _pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 3.8))
    w = 0.8 / max(1, len(rows))
    for i, (name, vals) in enumerate(rows.items()):
        ax.bar(
            [j + i * w for j in range(len(cols))], [vals.get(c, 0.0) for c in cols], w, label=name
        )
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(cols))], cols)
    ax.set_ylabel("LVE")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def lines_plot(
    rows: dict[str, dict[str, float]],
    datasets: list[str],
    lrs: tuple[float, ...],
    variants: list[str],
    path: Path,
) -> None:
    plt = _pyplot(path)
    if plt is None:
        return
    scopes = sorted({name.split(", lr")[0] for name in rows}, key=len)
    fig, axes = plt.subplots(1, len(scopes), figsize=(5 * len(scopes), 3.8), squeeze=False)
    for ax, scope in zip(axes[0], scopes, strict=True):
        for variant in variants:
            ys = []
            for lr in lrs:
                vals = rows.get(f"{scope}, lr {lr:g}, {variant}", {})
                ys.append(sum(vals.values()) / len(vals) if vals else float("nan"))
            ax.plot([f"{lr:g}" for lr in lrs], ys, marker="o", label=variant)
        ax.set_title(scope, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("mean test LVE")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 5 in miniature: PCA and decoder warm-up")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fraction_plot(
    rows: dict[str, dict[str, float]],
    xs: tuple[float | str, ...],
    cols: list[str],
    path: Path,
    xlabel: str = "fraction of the training set",
    title: str = "Fig. 4 in miniature: fine-tuning on an unseen convention",
    ylabel: str = "test LVE",
    log_x: bool = True,
) -> None:
    """One line per row over the columns, at positions ``xs`` (log scale, or categories)."""
    plt = _pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, vals in rows.items():
        ax.plot(xs, [vals[c] for c in cols], marker="o", label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(f"{xlabel} (log scale)" if log_x else xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
