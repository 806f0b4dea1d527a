"""Bilabial closures: do the lips close on /p/, /b/ and /m/?

A2F-Synth keeps the phoneme timeline of every clip beside the data
(``<generated root>/_timelines/<dataset>/<clip>.json``, :mod:`unitalker.synth.generate`),
so on its test splits each bilabial's interval is known. For each one, the smallest
mouth opening over the frames inside it (:func:`unitalker.evaluation.voices.mouth_opening`:
upper-to-lower lip midline distance in units of a wide-open /a/, 0 = the template's
closed lips) is taken for the model's prediction and for the label. A bilabial counts as
closed when that opening is at most :data:`CLOSURE_TOL` (3 mm on the synth heads).

:func:`closure_report` gives, per dataset and split, the share of bilabials the model
closes beside the share the labels close, and the median smallest opening of each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitalker.data.visemes import timeline_path

log = logging.getLogger(__name__)

CLOSURE_TOL = 0.1  # of the open range: lips this close count as closed


def bilabial_intervals(phonemes: Sequence[Sequence[Any]]) -> list[tuple[float, float]]:
    """``[(start, end), ...]`` seconds of the bilabials of a ``[[phone, start, end], ...]``
    timeline: the phones the articulation model closes the lips on (viseme ``PP``: p, b, m
    and their variants, with stress marks and diacritics)."""
    from unitalker.synth.articulation import phoneme_to_viseme

    return [
        (float(s), float(e)) for p, s, e in phonemes if e > s and phoneme_to_viseme(str(p)) == "PP"
    ]


def closure_minima(
    opening: np.ndarray, fps: float, intervals: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Smallest opening ``[N]`` over the frames inside each interval (frame ``j`` is at
    ``j / fps``); an interval shorter than a frame takes its nearest frame."""
    n = len(opening)
    out = np.full(len(intervals), np.nan, np.float32)
    for k, (s, e) in enumerate(intervals):
        a, b = int(np.ceil(s * fps - 1e-6)), int(np.floor(e * fps - 1e-6))
        if b < a:  # no frame inside: the one nearest the middle
            a = b = int(round((s + e) / 2 * fps))
        a, b = max(a, 0), min(b, n - 1)
        if a <= b:
            out[k] = float(opening[a : b + 1].min())
    return out


@dataclass
class ClosureRow:
    """Bilabials of one dataset on one split."""

    dataset: str
    convention: str
    split: str
    sequences: int  # sequences with a timeline
    bilabials: int
    model_closed: float  # share of bilabials the model closes
    label_closed: float  # share the labels close
    model_median: float  # median smallest opening (open-range units)
    label_median: float


@dataclass
class ClosureReport:
    rows: list[ClosureRow]
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "closed": f"smallest lip opening inside the bilabial <= {CLOSURE_TOL} of the open range",
            "rows": [asdict(r) for r in self.rows],
        }

    def table(self) -> str:
        lines = [
            "| dataset | convention | split | seqs | bilabials | closed (model) | closed (labels) "
            "| median opening (model) | median opening (labels) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.dataset} | `{r.convention}` | {r.split} | {r.sequences} | {r.bilabials} | "
                f"{r.model_closed:.0%} | {r.label_closed:.0%} | {r.model_median:.3f} | "
                f"{r.label_median:.3f} |"
            )
        lines.append(
            f"\n(closed: smallest lip opening inside the /p/, /b/ or /m/ <= {CLOSURE_TOL:g} of the "
            "open range, a wide /a/; openings in those units, 0 = the template's closed lips)"
        )
        return "\n".join(lines)


def closure_report(
    model: Any,
    manifest: str | Path | Any,
    *,
    splits: Sequence[str] = ("test",),
    datasets: Sequence[str] = (),
    max_sequences: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ClosureReport:
    """Bilabial closures of ``model`` and of the labels on each of ``splits``.

    Only datasets of synth conventions whose clips have a timeline are reported (the
    model runs as in :func:`unitalker.evaluation.evaluate.evaluate`, ground-truth
    identity). Raises ValueError when no clip of any split has one.
    """
    from unitalker import conventions
    from unitalker.data import load_manifest
    from unitalker.evaluation.voices import mouth_gauge, mouth_opening

    m = load_manifest(manifest)
    keys = set(datasets) or None
    rows = []
    for split in splits:
        if not m.has_split(split):
            log.warning("%s: no split %r: skipped", m.path, split)
            continue
        entries = {
            e.name: e
            for e in m.split(split).entries
            if (keys is None or e.dataset in keys) and conventions.get(e.convention).has_mesh
        }
        timed = {}
        for name, e in entries.items():
            tl = timeline_path(e.audio_path, e.dataset)
            if tl is not None:
                timed[name] = tl
        per: dict[str, dict[str, Any]] = {}
        gauges: dict[str, Any] = {}
        keys_timed = sorted({entries[n].dataset for n in timed})
        sizes = [
            min(sum(e.dataset == key for e in entries.values()), max_sequences or 10**9)
            for key in keys_timed
        ]
        kept = _predictions(model, m, split, keys_timed, sizes, max_sequences, progress)
        for k in kept:
            item, conv = k["item"], k["convention"]
            if item["name"] not in timed:
                continue
            doc = json.loads(timed[item["name"]].read_text())
            intervals = bilabial_intervals(doc.get("phonemes", []))
            gauge = gauges.get(conv) or gauges.setdefault(conv, mouth_gauge(conv))
            fps = float(item["fps"])
            pm = closure_minima(mouth_opening(conv, k["prediction"], gauge), fps, intervals)
            lm = closure_minima(
                mouth_opening(conv, np.asarray(item["motion"]), gauge), fps, intervals
            )
            ok = np.isfinite(pm) & np.isfinite(lm)
            acc = per.setdefault(
                item["dataset"], {"conv": conv, "seqs": 0, "model": [], "label": []}
            )
            acc["seqs"] += 1
            acc["model"].append(pm[ok])
            acc["label"].append(lm[ok])
        for key in sorted(per):
            acc = per[key]
            pm, lm = np.concatenate(acc["model"]), np.concatenate(acc["label"])
            if not len(pm):
                continue
            rows.append(
                ClosureRow(
                    key,
                    acc["conv"],
                    split,
                    acc["seqs"],
                    len(pm),
                    float((pm <= CLOSURE_TOL).mean()),
                    float((lm <= CLOSURE_TOL).mean()),
                    float(np.median(pm)),
                    float(np.median(lm)),
                )
            )
    if not rows:
        raise ValueError(
            f"{m.path}: no clip of {list(splits)} has an A2F-Synth timeline with a bilabial "
            "(_timelines/<dataset>/<clip>.json beside the generated data)"
        )
    return ClosureReport(rows)


def _predictions(
    model: Any,
    manifest: Any,
    split: str,
    keys: Sequence[str],
    sizes: Sequence[int],
    max_sequences: int | None,
    progress: Callable[[int, int], None] | None,
) -> Iterator[dict[str, Any]]:
    """The evaluation's ``(item, prediction)`` records, one dataset at a time (evaluate
    keeps every record it returns, clips included), with progress over all of them."""
    from unitalker.evaluation.evaluate import evaluate

    before, total = 0, sum(sizes)
    for key, size in zip(keys, sizes, strict=True):

        def step(done: int, _total: int, before: int = before) -> None:
            if progress is not None:
                progress(before + done, total)

        yield from evaluate(
            model,
            manifest,
            split=split,
            datasets=(key,),
            max_sequences=max_sequences,
            progress=step,
            keep_predictions=10**9,
        )[1]
        before += size
