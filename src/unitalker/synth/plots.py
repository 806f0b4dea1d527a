"""Diagnostic plots of one synth clip: waveform, phoneme labels, convention curves (Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitalker.conventions import ARKIT52_EMOTALK


def convention_traces(convention: str, data: np.ndarray) -> dict[str, np.ndarray]:
    """A few readable traces of a convention's data ``[T, dim]``."""
    from unitalker.geometry import vertices
    from unitalker.synth import conventions as sc
    from unitalker.synth.mesh import mouth_gap

    if convention == sc.ARKIT:
        idx = {n: i for i, n in enumerate(ARKIT52_EMOTALK)}
        names = (
            "jawOpen",
            "mouthClose",
            "mouthPucker",
            "mouthSmileLeft",
            "mouthRollLower",
            "eyeBlinkLeft",
        )
        return {n: data[:, idx[n]] for n in names}
    if convention == sc.FLAME:
        return {"jaw_rx (rad)": data[:, 0], **{f"expr_{k:02d}": data[:, 3 + k] for k in range(3)}}
    topo = sc.TOPOLOGY_OF[convention]
    a = sc.asset(topo)
    v = vertices(convention, data)
    pairs = a["slit_pairs"]
    up, lo = (int(i) for i in pairs[len(pairs) // 2])
    width = v[:, int(pairs[0, 0]), 0] - v[:, int(pairs[-1, 0]), 0]
    lip = a["lip_indices"]
    return {
        "lip gap (cm)": 100 * mouth_gap(v, (up, lo)),
        "slit width change (cm)": 100 * (width - width[0]),
        "lip protrusion (mm)": 1000 * (v[:, lip, 2].mean(1) - v[0, lip, 2].mean()),
    }


def plot_clip(
    path: str | Path,
    audio: np.ndarray,
    sr: int,
    timeline,
    convention: str,
    data: np.ndarray,
    fps: float,
    title: str = "",
) -> None:
    """Save a PNG: waveform with phoneme labels on top, convention traces below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = convention_traces(convention, data)
    fig, axes = plt.subplots(
        2, 1, figsize=(9, 4.2), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    t_a = np.arange(len(audio)) / sr
    axes[0].plot(t_a[::8], audio[::8], lw=0.4, color="0.4")
    axes[0].set_yticks([])
    for ph, s, e in timeline:
        if ph.startswith("_"):
            continue
        axes[0].axvspan(
            s, e, color="C0" if ph.strip("'") in ("m", "b", "p") else "none", alpha=0.15
        )
        axes[0].text(
            0.5 * (s + e), 0.9 * np.abs(audio).max(), ph, ha="center", va="top", fontsize=6
        )
    t = np.arange(len(data)) / fps
    for name, y in traces.items():
        axes[1].plot(t, y, lw=1, label=name)
    axes[1].legend(fontsize=6, ncol=3, loc="upper right")
    axes[1].set_xlabel("time (s); shaded: bilabials")
    axes[0].set_title(title or convention, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
