"""Evaluate a model on a manifest split: per dataset LVE, LVD, MVE, UFVE, FDD.

Blendshape and parameter conventions are measured after conversion to vertices (rig,
FLAME LBS with a user FLAME file, A2F-Synth's params model). Lip and upper-face regions
are looked up in the registry (:func:`unitalker.conventions.find_region`: a region the
convention carries, else the user's region files under ``regions`` folders). Without a
lip region the number is not called LVE: it is ``LVE-all`` (max over all vertices), and
the report says why; likewise ``FDD-all`` without an upper-face region.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from unitalker import conventions
from unitalker.evaluation.metrics import REPORT_ORDER, MetricSummary, score_sequence, summarize
from unitalker.geometry import rig_for

log = logging.getLogger(__name__)


@dataclass
class DatasetResult:
    dataset: str
    convention: str
    summary: MetricSummary
    notes: list[str] = field(default_factory=list)
    regions: dict[str, str] = field(default_factory=dict)  # region -> "path (source)"


@dataclass
class EvalReport:
    split: str
    identity: str
    results: list[DatasetResult]
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "identity": self.identity,
            "model": self.model,
            "averaging": {
                "pooled": "mean over all frames of all sequences (CodeTalker / FaceDiffuser)",
                "per_sequence": "mean over sequences of each sequence's mean (original UniTalker)",
            },
            "datasets": [
                {
                    "dataset": r.dataset,
                    "convention": r.convention,
                    "notes": r.notes,
                    "regions": r.regions,
                    **asdict(r.summary),
                }
                for r in self.results
            ],
        }

    def metric_columns(self) -> list[str]:
        """The metric names any dataset reports, in report order (LVE-all etc. only when
        some dataset had no region)."""
        have = {m for r in self.results for m in r.summary.pooled}
        return [m for m in REPORT_ORDER if m in have]

    def rows(self) -> list[dict[str, Any]]:
        cols = self.metric_columns()
        out = []
        for r in self.results:
            for avg in ("pooled", "per_sequence"):
                vals = getattr(r.summary, avg)
                out.append(
                    {
                        "dataset": r.dataset,
                        "convention": r.convention,
                        "averaging": avg,
                        "sequences": r.summary.n_sequences,
                        "frames": r.summary.n_frames,
                        **{m: vals.get(m) for m in cols},
                        "notes": "; ".join(r.notes),
                    }
                )
        return out

    def write_csv(self, path: str | Path) -> None:
        write_rows_csv(path, self.rows())

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self) -> str:
        """A fixed-width console table."""
        cols = self.metric_columns()
        head = f"{'dataset':<8} {'convention':<24} {'avg':<8} {'seq':>4} " + " ".join(
            f"{m:>11}" for m in cols
        )
        lines = [head, "-" * len(head)]
        for row in self.rows():
            avg = "pooled" if row["averaging"] == "pooled" else "per-seq"
            lines.append(
                f"{row['dataset']:<8} {row['convention'][:24]:<24} {avg:<8} {row['sequences']:>4} "
                + " ".join(f"{'-':>11}" if row[m] is None else f"{row[m]:>11.4e}" for m in cols)
            )
        notes = [f"{r.dataset}: {n}" for r in self.results for n in r.notes]
        lines += [f"note: {n}" for n in notes]
        lines.append(
            f"identity: {self.identity}; LVE = mean of per-frame max squared lip error; "
            "LVD non-squared; UFVE = mean L2 over the upper face (UFVE-max: LVE's form "
            "there); FDD = GT minus prediction (signed); -all = no region, all vertices"
        )
        return "\n".join(lines)


Predictor = Callable[[dict[str, Any], int], np.ndarray]


def evaluate(
    model: Any,
    manifest: str | Path | Any,
    *,
    split: str = "test",
    identity: Literal["gt", "pivot", "cross"] = "gt",
    datasets: tuple[str, ...] = (),
    flame_model: str | None = None,
    flame_face_indices: str | None = None,
    static_baseline: bool = False,
    max_sequences: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    keep_predictions: int = 0,
    regions: tuple[str | Path, ...] = (),
) -> tuple[EvalReport, list[dict[str, Any]]]:
    """Run ``model`` on every clip of ``split`` and compute the metrics per dataset.

    Args:
        model: a :class:`UniTalker` (eval mode is set here); None with ``static_baseline``.
        manifest: split file / dataset folder / root.
        split: split name.
        identity: ``gt`` (each clip's subject, global index with the dataset offset;
            subjects unknown to the model or with no clip in the manifest's train split use
            the pivot, and the report notes it), ``pivot``, or ``cross``: a subject of another dataset
            (the first subject of the next dataset in the model's identity table), the
            cross-identity inference of the paper's Fig. 3.
        datasets: only these dataset keys.
        flame_model / flame_face_indices: for ``flame_params_from_dadhead``.
        static_baseline: score the subject's static template instead of the model (the
            "does it move at all" baseline).
        max_sequences: at most this many sequences per dataset.
        progress: ``progress(done, total)``.
        keep_predictions: return the first N (item, prediction) pairs (for rendering).
        regions: folders holding the user's region files (data release resources, BIWI
            ``regions/``, ``FLAME_masks.pkl``...), searched before ``$UNITALKER_REGIONS``
            and the ``flame_model``'s folder.

    Returns:
        The report and the kept predictions.
    """
    from unitalker.data import ClipDataset, load_manifest
    from unitalker.training.builders import table_from_model

    m = load_manifest(manifest)
    if model is None:
        if not static_baseline:
            raise ValueError("evaluate needs a model unless static_baseline=True")
        from unitalker.data import IdentityTable

        table = IdentityTable.from_manifest(m)
    else:
        table = table_from_model(model)
    ds = ClipDataset(
        m,
        split,
        max_seconds=None,
        min_seconds=0.0,
        identities=table,
        unseen_identity="pivot",
        datasets=tuple(datasets) or None,
    )
    dev = torch.device("cpu") if model is None else model.device
    if model is not None:
        model.eval()
    if identity == "cross" and len(table.datasets) < 2:
        raise ValueError("identity='cross' needs a model trained on at least two datasets")
    # Subjects with no clip in the manifest's training split (VOCASET's test speakers, BIWI
    # Test-B) have identity rows that never trained: condition them on the pivot instead.
    trained: set[tuple[str, int]] | None = None
    if (
        identity == "gt"
        and split != "train"
        and m.has_split("train")
        and model is not None
        and model.config.pivot
    ):
        trained = {(e.dataset, e.local_id) for e in m.split("train").entries}
    by_ds: dict[str, list[int]] = {}
    for i, key in enumerate(ds.dataset_keys):
        by_ds.setdefault(key, []).append(i)
    if max_sequences:
        by_ds = {k: v[:max_sequences] for k, v in by_ds.items()}
    total = sum(len(v) for v in by_ds.values())
    done = 0
    results, kept = [], []
    for key, idxs in by_ds.items():
        conv = ds.entries[idxs[0]].convention
        if not static_baseline and conv not in model.heads:
            log.warning("model has no head %s: skipping dataset %s", conv, key)
            continue
        vmap = rig_for(conv, flame_model=flame_model, flame_face_indices=flame_face_indices)
        notes = []
        search = (*regions, *([Path(flame_model).parent] if flame_model else []))
        release_rig = False
        if vmap is None and conventions.get(conv).kind == "blendshapes":
            rig = conventions.find_release_rig(conv, search)
            if rig is not None:
                from unitalker.geometry.rigs import BlendshapeRig

                vmap, release_rig = BlendshapeRig(rig[0], rig[1]), True
                notes.append(f"vertices through the release rig {rig[2]}")
        if vmap is None:
            log.warning("%s (%s) has no vertex map: cannot be measured", key, conv)
            continue
        vmap = vmap.to(dev)
        unseen = 0
        lip = upper = None
        scores = []
        for i in idxs:
            item = ds[i]
            gt = torch.as_tensor(item["motion"], device=dev)
            tpl = torch.as_tensor(item["template"], device=dev)
            if static_baseline:
                pred = tpl[None].expand(len(gt), -1)
            else:
                pivot = model.pivot_index if model.config.pivot else -1
                ident = _identity_for(identity, item, key, table, pivot)
                if ident < 0:
                    raise ValueError("identity='pivot': the model has no pivot identity")
                e = ds.entries[i]
                if trained is not None and (e.dataset, e.local_id) not in trained:
                    ident, unseen = model.pivot_index, unseen + 1
                pred = predict_clip(
                    model, ds.audio(i), conv, ident, tpl, len(gt), float(item["fps"])
                )
            with torch.no_grad():
                pv = vmap(pred.float()).cpu().numpy()
                gv = vmap(gt.float()).cpu().numpy()
                tv = vmap(tpl[None].float()).cpu().numpy()[0]
            if not scores:  # the regions of this mesh, once per dataset
                lip, upper = (
                    _region(conv, r, search, gv.shape[1], release_rig, flame_face_indices)
                    for r in ("lip", "upper_face")
                )
            scores.append(score_sequence(item["name"], pv, gv, tv, _idx(lip), _idx(upper)))
            if len(kept) < keep_predictions:
                kept.append({"item": item, "prediction": pred.cpu().numpy(), "convention": conv})
            done += 1
            if progress:
                progress(done, total)
        if unseen:
            notes.append(f"{unseen} sequence(s) of subjects with no training clip: pivot identity")
        used = {}
        for what, reg, instead in (
            ("lip", lip, "LVE-all/LVD-all: max over all vertices"),
            ("upper_face", upper, "no UFVE; FDD-all over all vertices"),
        ):
            if reg is None:
                notes.append(f"{conventions.no_region_reason(conv, what)}: {instead}")
            else:
                used[what] = f"{reg.path} ({reg.source})"
        summary = summarize(scores, lip_region=lip is not None, upper_region=upper is not None)
        results.append(DatasetResult(key, conv, summary, notes, used))
    name = str(model.meta.get("source", "")) if model is not None and hasattr(model, "meta") else ""
    return EvalReport(
        split, "static template" if static_baseline else identity, results, name
    ), kept


def _idx(region: conventions.Region | None) -> np.ndarray | None:
    return None if region is None else region.indices


def _region(
    conv: str,
    region: str,
    search: tuple[str | Path, ...],
    n_vertices: int,
    release_rig: bool,
    face_indices: str | None,
) -> conventions.Region | None:
    """The region on the mesh the metrics see: FLAME-parameter vertices restricted to a
    face subset (``--flame-face-indices``) get the full-FLAME region renumbered into it."""
    from unitalker.geometry.flame import FLAME_PARAMS

    if conv == FLAME_PARAMS and face_indices:
        subset = np.load(face_indices, allow_pickle=False).astype(np.int64).reshape(-1)
        reg = conventions.find_region(conv, region, search, n_vertices=5023)
        if reg is None:
            return None
        pos = {int(v): i for i, v in enumerate(subset)}
        idx = np.asarray([pos[int(v)] for v in reg.indices if int(v) in pos], np.int64)
        if not len(idx):
            raise ValueError(
                f"{reg.path}: no {region} vertex lies in the face subset {face_indices}"
            )
        return conventions.Region(idx, reg.path, f"{reg.source}, renumbered into {face_indices}")
    return conventions.find_region(
        conv, region, search, n_vertices=n_vertices, release_rig=release_rig
    )


def predict_clip(
    model: Any,
    audio: np.ndarray,
    conv: str,
    ident: int,
    tpl: torch.Tensor,
    n_frames: int | None = None,
    fps: float | None = None,
) -> torch.Tensor:
    """Run the model on one head for the whole clip's 16 kHz audio (as a user would) and
    trim the prediction to ``n_frames`` annotated frames: ``[n_frames, dim]``.

    ``tpl`` is the template ``[dim]`` or ``[1, dim]``; ``n_frames`` defaults to the
    clip's own frame count at ``fps`` (the convention's fps by default). Cutting the
    audio to the annotation instead would hand the encoder up to half a frame less audio
    when frame rounding goes down, so it would emit one frame fewer and the output would
    be stretched to fit.
    """
    from unitalker.audio import frame_count

    fps = conventions.get(conv).fps if fps is None else fps
    n_full = frame_count(len(audio), fps)
    n_frames = n_full if n_frames is None else n_frames
    dev = tpl.device
    tpl = tpl.reshape(1, -1)
    with torch.no_grad():
        out = model(
            torch.as_tensor(audio, device=dev)[None],
            heads=[conv],
            identity=torch.tensor([ident], device=dev),
            templates={conv: tpl},
            frames={conv: [max(n_frames, n_full)]},
        )
    return out[conv].motion[0][:n_frames]


def write_rows_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """A report's rows as CSV, the first row's keys as the header."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _identity_for(mode: str, item: dict[str, Any], dataset: str, table: Any, pivot: int) -> int:
    """The identity row a clip is conditioned on under ``mode`` (gt / pivot / cross)."""
    if mode == "gt":
        return int(item["identity"])
    if mode == "pivot":
        return pivot
    names = table.datasets
    other = names[(names.index(dataset) + 1) % len(names)] if dataset in names else names[0]
    return table.offset(other)


def render_previews(kept: list[dict[str, Any]], out_dir: str | Path) -> list[Path] | str:
    """Side-by-side GT / prediction mp4s when the renderer is installed, else a message."""
    try:
        from unitalker.render import render_video  # type: ignore[attr-defined]
    except (ImportError, AttributeError) as e:
        return f"--render skipped: the renderer is not available in this install ({e})"
    from unitalker.animation import Animation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in kept:
        it, conv = k["item"], k["convention"]
        fps = float(it["fps"])
        res = {
            "ground truth": Animation(conv, fps, it["motion"]),
            "prediction": Animation(conv, fps, k["prediction"]),
        }
        path = out / f"{it['name'].replace('/', '_')}.mp4"
        try:
            paths.append(render_video(res, it["audio"], path, overwrite=True))
        except Exception as e:  # noqa: BLE001 - a missing GL context etc.: report, go on
            return f"--render failed: {type(e).__name__}: {e}"
    return paths
