"""Speed and memory measurements behind ``unitalker bench``.

The model is built from a config with random weights (nothing downloads): ``B`` is the
released UniTalker-B architecture (WavLM base / base-plus encoder, TCN decoder, the six
original conventions' heads with 512 PCA components for vertex heads, 935 identities);
``tiny`` is the tests' debug model (:func:`unitalker.models.config.debug_config`) with the
original heads, for smoke tests. Timings are medians over repeats after a
warm-up run. Peak memory is the process's high-water mark (``VmHWM`` in
``/proc/self/status``), each measurement in a fresh subprocess so earlier runs do not
count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from unitalker.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

log = logging.getLogger(__name__)

ORIGINAL_HEADS = (
    "BIWI_23370_vertices",
    "FLAME_5023_vertices",
    "meshtalk_6172_vertices",
    "3DETF_blendshape_weight",
    "flame_params_from_dadhead",
    "inhouse_blendshape_weight",
)
N_IDENTITIES_B = 935
SIZES = ("B", "tiny")
# (look-ahead, chunk) seconds of the default model's streams: 50 ms chunks at two
# look-aheads, and 80 ms chunks at 150 ms (more right context per frame on average, still
# within 250 ms of latency when a model run takes under 20 ms)
DEFAULT_STREAMS = ((0.1, 0.05), (0.15, 0.05), (0.15, 0.08))


def build_bench_model(size: str = "B", seed: int = 0) -> Any:
    """A UniTalker of the given size with random weights (heads and PCA non-zero)."""
    import transformers

    from unitalker.models.config import (
        DecoderConfig,
        EncoderConfig,
        ModelConfig,
        debug_config,
    )
    from unitalker.models.unitalker import UniTalker, default_heads

    torch.manual_seed(seed)
    if size == "B":
        enc = EncoderConfig(family="wavlm", hf_config=transformers.WavLMConfig().to_dict())
        heads = default_heads(ORIGINAL_HEADS, 512)
        ids = tuple(f"id{i}" for i in range(N_IDENTITIES_B - 1)) + ("pivot",)
        config = ModelConfig(encoder=enc, decoder=DecoderConfig(), heads=heads, identities=ids)
    elif size == "tiny":  # the tests' debug model, with the original heads
        config = debug_config("wavlm", heads=ORIGINAL_HEADS, n_ids=8)
    else:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    model = UniTalker(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name.startswith(("out_head_dict", "pca_layer_dict", "templates")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def bench_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: noise under a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.1 * env * rng.standard_normal(len(t))).astype(np.float32)


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # GPU work is asynchronous: time it to the end


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN kernel choice)
    _sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """High-water resident memory of this process in MB (Linux ``VmHWM``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class BenchReport:
    """What ``unitalker bench`` measured. Times in seconds for ``clip_seconds`` of audio."""

    size: str
    clip_seconds: float
    threads: int
    device: str
    speed: dict[str, float] = field(default_factory=dict)  # path -> seconds
    errors: dict[str, float] = field(default_factory=dict)  # path -> max abs error vs fp32
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    streaming: dict[str, dict[str, float]] = field(default_factory=dict)
    spread: float = 0.0  # range (max - min) of the fp32 outputs, over all heads
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)  # written files
    stream_default: dict[str, dict[str, float]] = field(default_factory=dict)
    render_fps: float | None = None
    render_note: str = ""
    notes: list[str] = field(default_factory=list)

    def rtf(self, path: str) -> float:
        return self.speed[path] / self.clip_seconds

    def targets(self) -> dict[str, tuple[bool, str]]:
        out = {}
        s = self.speed
        if "per_head" in s and "one_pass" in s:
            x = s["per_head"] / s["one_pass"]
            out["one pass >= 6x faster than per-head"] = (x >= 6, f"{x:.2f}x")
        fast = {k: v for k, v in s.items() if k != "per_head"}
        if fast:
            bv, bk = min((v, k) for k, v in fast.items())
            # 0.25 s for 10 s of audio (the issue's target), scaled to the clip length
            limit = 0.25 * self.clip_seconds / 10.0
            out[f"best path <= {limit:.3g} s for the {self.clip_seconds:g} s clip"] = (
                bv <= limit,
                f"{bk}: {bv:.3f} s",
            )
            if "per_head" in s:
                x = s["per_head"] / bv
                out["best path >= 25x the original demo"] = (x >= 25, f"{bk}: {x:.1f}x")
        m = self.memory
        if "60" in m and "600" in m:
            r = m["600"]["working_mb"] / m["60"]["working_mb"]
            out["10 min memory above the model <= 1.5x of 1 min"] = (r <= 1.5, f"{r:.2f}x")
            r2 = m["600"]["peak_mb"] / m["60"]["peak_mb"]
            out["10 min peak memory <= 1.5x of 1 min (outputs returned and written)"] = (
                r2 <= 1.5,
                f"{r2:.2f}x",
            )
        for sec, o in self.outputs.items():
            out[
                f"npz of {float(sec) / 60:g} min ({o['npz_mb']:.0f} MB) written no slower than inference"
            ] = (
                o["write_s"] <= o["infer_s"],
                f"{o['write_s']:.1f} s vs {o['infer_s']:.1f} s",
            )
        for st in self.stream_default.values():
            la_ms, where = st["lookahead_ms"], _stream_setting(st)
            ok = st["latency_ms"] <= 250 and la_ms <= 150
            out[f"default model streaming latency <= 250 ms ({where})"] = (
                ok,
                f"{st['latency_ms']:.0f} ms",
            )
            if "lve_stream" in st:
                r = st["lve_stream"] / st["lve_offline"]
                out[f"default model streaming LVE within 10% of offline ({where})"] = (
                    r <= 1.1,
                    f"{st['lve_stream']:.3g} vs {st['lve_offline']:.3g} ({r:.3f}x)",
                )
        return out

    def table(self) -> str:
        lines = [
            f"unitalker bench: size {self.size}, {self.clip_seconds:g} s clip, {self.device}, {self.threads} threads",
            "",
            f"{'path':44s} {'seconds':>9s} {'RTF':>7s} {'speed-up':>9s} {'max |err|':>10s} {'err/spread':>10s}",
        ]
        names = {
            "per_head": "per dataset, whole model each (original demo)",
            "one_pass": "one pass, all heads, fp32",
            "bf16": "one pass, bf16 model (no autocast)",
            "onnx": "one pass, onnxruntime fp32 (all graph opts)",
            "compile": "one pass, bf16 + torch.compile (inductor)",
        }
        base = self.speed.get("per_head")
        for k, label in names.items():
            if k not in self.speed:
                continue
            v = self.speed[k]
            sp = f"{base / v:8.2f}x" if base else ""
            err = f"{self.errors[k]:10.2e}" if k in self.errors else ""
            rel = (
                f" {self.errors[k] / self.spread:10.2e}" if k in self.errors and self.spread else ""
            )
            lines.append(f"{label:44s} {v:9.3f} {v / self.clip_seconds:7.3f} {sp:>9s} {err}{rel}")
        if self.memory:
            lines += [
                "",
                f"{'peak memory (windowed, all heads)':44s} {'peak MB':>9s} {'outputs MB':>10s} {'above model':>11s}",
            ]
            for sec, m in self.memory.items():
                lines.append(
                    f"{float(sec):g} s audio{'':35s} {m['peak_mb']:9.0f} {m['output_mb']:10.0f} {m['working_mb']:10.0f}"
                )
        if self.streaming:
            lines += [
                "",
                f"{'streaming (chunk 100 ms)':28s} {'look-ahead ms':>13s} {'compute ms':>10s} {'latency ms':>10s} {'max |err|':>10s} {'mean |err|':>10s}",
            ]
            for la, st in self.streaming.items():
                lines.append(
                    f"{'':28s} {float(la) * 1000:13.0f} {st['compute_ms']:10.0f} {st['latency_ms']:10.0f} {st['max_err']:10.2e} {st['mean_err']:10.2e}"
                )
        if self.outputs:
            lines += [
                "",
                f"{'outputs written (npz, all heads)':44s} {'MB':>9s} {'write s':>9s} {'infer s':>9s}",
            ]
            for sec, o in self.outputs.items():
                lines.append(
                    f"{float(sec):g} s audio{'':35s} {o['npz_mb']:9.0f} {o['write_s']:9.2f} {o['infer_s']:9.2f}"
                )
        if self.stream_default:
            mode = (
                "windowed"
                if any(st.get("windowed") for st in self.stream_default.values())
                else "incremental"
            )
            lines += [
                "",
                f"{'default model, ' + mode + ' (chunk ms)':38s} {'look-ahead':>10s} {'compute':>8s} {'latency':>8s} {'LVE stream':>10s} {'LVE offline':>11s}",
            ]
            for st in self.stream_default.values():
                lv = (
                    f"{st['lve_stream']:10.4g} {st['lve_offline']:11.4g}"
                    if "lve_stream" in st
                    else f"{'n/a':>10s} {'n/a':>11s}"
                )
                lines.append(
                    f"{st['chunk_ms']:38.0f} {st['lookahead_ms']:10.0f} {st['compute_ms']:8.1f} {st['latency_ms']:8.0f} {lv}"
                )
        if self.render_fps:
            lines += ["", f"render: {self.render_fps:.0f} frames/s (5k vertices, 512x512)"]
        elif self.render_note:
            lines += ["", f"render: n/a ({self.render_note})"]
        lines += ["", "targets:"]
        for k, (ok, val) in self.targets().items():
            lines.append(f"  [{'met' if ok else 'NOT met'}] {k}: {val}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> str:
        d = self.__dict__ | {
            "targets": {k: {"met": ok, "value": v} for k, (ok, v) in self.targets().items()}
        }
        return json.dumps(d, indent=2)


def _max_err(a: dict[str, Any], b: dict[str, Any]) -> float:
    return max(
        float((a[h].motion.float().cpu() - b[h].motion.float().cpu()).abs().max()) for h in a
    )


def run_bench(
    size: str = "B",
    seconds: float = 10.0,
    *,
    repeats: int = 3,
    paths: tuple[str, ...] = ("per_head", "one_pass", "bf16", "onnx"),
    memory_seconds: tuple[float, ...] = (60.0, 600.0),
    lookaheads: tuple[float, ...] = (0.08, 0.2, 0.5),
    stream_seconds: float = 8.0,
    render: bool = True,
    progress: Callable[[str], None] | None = None,
    memory_precision: str = "bf16",
    default_streams: tuple[tuple[float, float], ...] = DEFAULT_STREAMS,
    synth_data: str | Path | None = None,
    max_sequences: int | None = None,
    device: str | None = None,
    stream_model: str | Path | None = None,
    stream_windowed: bool = False,
) -> BenchReport:
    """Measure every inference path; see the module docstring.

    Args:
        size: ``B`` or ``tiny``.
        seconds: clip length for the speed table.
        repeats: timed runs per path (median).
        paths: which of per_head, one_pass, bf16, onnx to time.
        memory_seconds: audio lengths for the windowed peak-memory runs (subprocesses).
        lookaheads: streaming look-aheads to measure.
        stream_seconds: audio length for the streaming measurement.
        render: also measure the renderer (needs the render extra and EGL).
        progress: called with a short description before each step.
        memory_precision: precision of the memory / npz-writing runs.
        default_streams: ``(look-ahead, chunk)`` seconds of each incremental stream of the
            bundled default model (or ``stream_model``).
        synth_data: an A2F-Synth release layout (``scripts/prepare_synth.sh``): the default
            model's LVE on its test split, streamed and offline.
        max_sequences: at most this many test sequences per dataset for that LVE.
        stream_model: the model of those rows (default: the bundled default model).
        stream_windowed: stream that model with its encoder's ``stream_window``.
        device: torch device of the speed and streaming runs (default cpu; the memory
            runs measure host memory on the CPU).
    """
    from unitalker.device import resolve_device
    from unitalker.inference.precision import cpu_bf16_native

    say = progress or (lambda _msg: None)
    dev = resolve_device(device if device is not None else "cpu")
    model = build_bench_model(size).to(dev)
    wav = bench_audio(seconds)
    audio = torch.from_numpy(wav)[None].to(dev)
    rep = BenchReport(size, seconds, torch.get_num_threads(), str(model.device))
    with torch.inference_mode():
        ref = model(audio)
        if "per_head" in paths:
            say("per-dataset runs (original demo)")
            # The original demo runs the whole model once per demo dataset D0..D7 (eight
            # runs: D3/D4 and D6/D7 share a head but are run separately).
            from unitalker import conventions

            demo = [conventions.get_dataset(k).convention for k in conventions.ORIGINAL_DATASETS]
            demo = [h for h in demo if h in model.heads] or list(model.heads)
            rep.notes.append(f"per-head path: {len(demo)} whole-model runs, one per demo dataset")
            rep.speed["per_head"] = _median_time(
                lambda: [model(audio, heads=[h]) for h in demo], repeats
            )
        if "one_pass" in paths:
            say("one pass")
            rep.speed["one_pass"] = _median_time(lambda: model(audio), repeats)
        if "bf16" in paths:
            say("bf16")

            from unitalker.inference.precision import for_precision

            runner, ctx = for_precision(model, "bf16")

            def bf() -> Any:
                with ctx:
                    return runner(audio)

            rep.speed["bf16"] = _median_time(bf, repeats)
            rep.errors["bf16"] = _max_err(ref, bf())
            if dev.type == "cpu" and not cpu_bf16_native():
                rep.notes.append(
                    "bf16: this CPU has no native bf16 kernels (oneDNN), the row times the "
                    "reference fallback"
                )
        if "compile" in paths:
            say("bf16 + torch.compile (inductor; compiling takes minutes)")
            import torch._dynamo as dynamo  # (as: a bare `import torch.x` would make torch local)

            from unitalker.inference.precision import for_precision

            runner, _ = for_precision(model, "bf16")
            # HF encoders pass each layer its index as a Python int, and dynamo compiles
            # the layer once per index: a 24-layer L encoder needs 24 entries (default 8,
            # past which the remaining layers would silently run eagerly).
            limit = dynamo.config.recompile_limit
            dynamo.config.recompile_limit = max(limit, 64)
            try:
                compiled = torch.compile(runner, dynamic=False)
                rep.speed["compile"] = _median_time(lambda: compiled(audio), repeats)
                rep.errors["compile"] = _max_err(ref, compiled(audio))
            except Exception as e:  # noqa: BLE001 - no compiler / inductor failure: report it
                rep.notes.append(f"torch.compile failed: {type(e).__name__}: {str(e)[:120]}")
            finally:
                dynamo.config.recompile_limit = limit
    if "onnx" in paths:
        say("ONNX export + onnxruntime")
        try:
            from unitalker.inference.onnx import OnnxUniTalker, export_onnx

            with tempfile.TemporaryDirectory() as tmp:
                f = export_onnx(model, Path(tmp) / "model.onnx")
                runner = OnnxUniTalker(f, threads=torch.get_num_threads())
                rep.speed["onnx"] = _median_time(lambda: runner(audio), repeats)
                rep.errors["onnx"] = _max_err(ref, runner(audio))
                del runner
        except ImportError as e:
            rep.notes.append(f"onnx skipped: {e}")
    rep.spread = max(float(v.motion.max() - v.motion.min()) for v in ref.values())
    rep.notes.append(
        "max |err| is against fp32 torch on the same clip, over all heads; err/spread divides "
        f"it by the largest head's output range ({rep.spread:.2f}, random weights)"
    )
    if memory_seconds and memory_precision == "bf16" and not cpu_bf16_native():
        memory_precision = "fp32"  # the memory runs would take an hour in emulated bf16
        rep.notes.append("memory runs in fp32: no native bf16 on this CPU")
    for sec in memory_seconds:
        say(f"peak memory and npz writing, {sec:g} s of audio, {memory_precision} (subprocess)")
        m = measure_memory(size, sec, memory_precision)
        rep.memory[f"{sec:g}"] = {k: m[k] for k in ("peak_mb", "output_mb", "working_mb")}
        rep.outputs[f"{sec:g}"] = {k: m[k] for k in ("npz_mb", "write_s", "infer_s")}
    if memory_seconds:
        rep.notes.append(
            f"memory runs: {memory_precision}, results above {_memmap_mb():.0f} MB streamed to "
            "disk and memory-mapped, then written as npz; peak includes both"
        )
    if lookaheads:
        say("streaming")
        rep.streaming = measure_streaming(model, stream_seconds, lookaheads)
    if default_streams:
        say("streaming the bundled default model (incremental)")
        rep.stream_default = measure_default_streaming(
            default_streams,
            synth_data=synth_data,
            max_sequences=max_sequences,
            model_path=stream_model,
            windowed=stream_windowed,
        )
        if synth_data is None:
            rep.notes.append(
                "default-model LVE not measured: give --synth-data (scripts/prepare_synth.sh output)"
            )
    if render:
        say("render")
        try:
            from unitalker.render.renderer import bench_render

            rep.render_fps = bench_render(frames=60 if size == "tiny" else 200).fps
        except Exception as e:  # noqa: BLE001 - no EGL / no render extra: report, don't fail
            rep.render_note = f"{type(e).__name__}: {e}"[:160]
    return rep


def measure_streaming(
    model: TalkerModel, seconds: float, lookaheads: tuple[float, ...], chunk: float = 0.1
) -> dict[str, dict[str, float]]:
    """Per look-ahead: median compute per push that emits frames, latency and error vs offline."""
    from unitalker.inference.animate import animate
    from unitalker.inference.streaming import Streamer, stream_array

    wav = bench_audio(seconds, seed=1)
    offline = animate(model, wav, window=0)
    out = {}
    for la in lookaheads:
        s = Streamer(model, lookahead=la, context=2.0)
        frames, times = stream_array(s, wav, chunk)
        compute = statistics.median(s.run_times) if s.run_times else 0.0
        errs = [np.abs(frames[h] - offline[h].data) for h in frames]
        out[f"{la:g}"] = {
            "compute_ms": compute * 1000,
            # audio must first arrive (one chunk and the look-ahead), then one model run
            "latency_ms": (chunk + la + compute) * 1000,
            "max_err": float(max(e.max() for e in errs)),
            "mean_err": float(np.mean([e.mean() for e in errs])),
        }
    return out


def _memmap_mb() -> float:
    from unitalker.inference.animate import MEMMAP_BYTES

    return MEMMAP_BYTES / 2**20


class _StreamedModel:
    """Looks like a UniTalker to :func:`unitalker.evaluation.evaluate.evaluate`, but each
    call streams the clip through an incremental :class:`Streamer` in ``chunk`` pieces."""

    def __init__(self, model: TalkerModel, lookahead: float, chunk: float, windowed: bool = False):
        self.model, self.lookahead, self.chunk = model, lookahead, chunk
        self.windowed = windowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def eval(self) -> _StreamedModel:
        self.model.eval()
        return self

    def __call__(self, audio, heads, identity, templates, frames):  # noqa: ANN001, ANN204
        from unitalker.inference.streaming import Streamer, stream_array
        from unitalker.models.unitalker import HeadOutput

        out = {}
        for h in heads:
            s = Streamer(
                self.model,
                heads=[h],
                identity=int(identity.reshape(-1)[0]),
                lookahead=self.lookahead,
                incremental=True,
                windowed=self.windowed,
            )
            res, _ = stream_array(s, audio[0].cpu().numpy(), self.chunk)
            m = torch.from_numpy(res[h])
            m = m - self.model.template(h)[None] + templates[h][0][None]  # clip's template
            n = int(frames[h][0])
            m = m[:n] if len(m) >= n else torch.cat([m, m[-1:].expand(n - len(m), -1)])
            out[h] = HeadOutput(m[None], None, [n], s.fps[h])
        return out


def measure_default_streaming(
    settings: Sequence[tuple[float, float]] = DEFAULT_STREAMS,
    *,
    synth_data: str | Path | None = None,
    max_sequences: int | None = None,
    model_path: str | Path | None = None,
    windowed: bool = False,
) -> dict[str, dict[str, float]]:
    """The bundled default model (or the one at ``model_path``) streamed incrementally:
    compute, latency and, with ``synth_data``, its LVE on the A2F-Synth test split
    streamed and offline.

    Args:
        settings: ``(look-ahead, chunk)`` seconds per stream. A frame waits for one chunk
            to arrive, then for its look-ahead, then for one model run; its right context
            is between the look-ahead and the look-ahead plus a chunk.

    Returns:
        ``{"look-ahead 150 ms, chunk 80 ms": row, ...}`` in the order given.
    """
    from unitalker.inference.streaming import Streamer, stream_array
    from unitalker.models.checkpoint import load_model

    model = load_model(model_path, device="cpu").eval()
    wav = bench_audio(8.0, seed=2)
    out: dict[str, dict[str, float]] = {}
    lve_off = None
    if synth_data is not None:
        from unitalker.evaluation.evaluate import evaluate

        rep, _ = evaluate(model, synth_data, max_sequences=max_sequences)
        lve_off = _mean_lve(rep)
    for la, chunk in settings:
        if not (la >= 0 and chunk > 0):
            raise ValueError(f"stream setting needs look-ahead >= 0 and chunk > 0: {la}, {chunk}")
        s = Streamer(model, lookahead=la, incremental=True, windowed=windowed)
        stream_array(s, wav, chunk)
        compute = statistics.median(s.run_times[3:] or s.run_times)
        st = {
            "windowed": float(s.windowed),
            "lookahead_ms": la * 1000,
            "chunk_ms": chunk * 1000,
            "compute_ms": compute * 1000,
            "latency_ms": (chunk + la + compute) * 1000,
        }
        if lve_off is not None:
            from unitalker.evaluation.evaluate import evaluate

            rep, _ = evaluate(
                _StreamedModel(model, la, chunk, windowed),
                synth_data,
                max_sequences=max_sequences,
            )
            st |= {"lve_stream": _mean_lve(rep), "lve_offline": lve_off}
        out[_stream_setting(st)] = st
    return out


def _stream_setting(st: dict[str, float]) -> str:
    return f"look-ahead {st['lookahead_ms']:.0f} ms, chunk {st['chunk_ms']:.0f} ms"


def _mean_lve(report: Any) -> float:
    """Mean LVE over the report's datasets."""
    vals = [r.summary.pooled["LVE"] for r in report.results]
    return float(np.mean(vals))


def measure_memory(size: str, seconds: float, precision: str = "bf16") -> dict[str, float]:
    """Peak RSS of windowed inference on ``seconds`` of audio, in a fresh subprocess."""
    cmd = [
        sys.executable,
        "-m",
        "unitalker.inference.bench",
        "--memory",
        str(seconds),
        "--size",
        size,
        "--precision",
        precision,
    ]
    env = dict(os.environ)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _memory_child(size: str, seconds: float, precision: str) -> dict[str, float]:
    from unitalker.inference.animate import animate

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_bench_model(size)
    wav = bench_audio(seconds)
    from unitalker.export import write_outputs

    base = peak_rss_mb()
    t0 = time.perf_counter()
    res = animate(model, wav, precision=precision)
    infer = time.perf_counter() - t0
    out_mb = sum(a.data.nbytes for a in res.values()) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        (f,) = write_outputs(res, tmp, "bench", ["npz"])
        write = time.perf_counter() - t0
        npz_mb = f.stat().st_size / 2**20
    peak = peak_rss_mb()
    return {
        "peak_mb": peak,
        "model_mb": base,
        "output_mb": out_mb,
        "working_mb": peak - base,
        "npz_mb": npz_mb,
        "write_s": write,
        "infer_s": infer,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="internal: one peak-memory measurement")
    p.add_argument("--memory", type=float, required=True)
    p.add_argument("--size", default="B")
    p.add_argument("--precision", default="bf16")
    a = p.parse_args(argv)
    print(json.dumps(_memory_child(a.size, a.memory, a.precision)))


if __name__ == "__main__":
    main()
