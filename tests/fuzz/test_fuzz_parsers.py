"""Fuzzed parsers raise only the project's own errors (never a TypeError or a hang).

Each target gets mutated versions of a valid input (byte edits, truncation, insertions,
fields replaced by random JSON / YAML values, hostile constructs such as deep nesting,
alias bombs and tags) and must either succeed or raise its own error class. The number of
inputs per target is ``--fuzz N`` / ``UNITALKER_FUZZ`` (200 by default; the long run in
docs/reliability.md used 10,000); inputs are seeded, so a run is reproducible.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

# ---- generic strategies --------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**18, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
)
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
odd_paths = st.sampled_from(
    [
        "",
        "/",
        "..",
        "../../etc/passwd",
        "/etc/passwd",
        "a" * 300,
        "x\x00y",
        "~/x",
        "a/" * 200,
        "\\\\server\\share",
        "con",
        "audio/",
        ".",
        "nul:",
        "ünï/cödé.wav",
    ]
) | st.text(max_size=40)


def _edit(base: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(base)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b)


def mutated(base: bytes, head: int | None = None) -> st.SearchStrategy[bytes]:
    """Byte-level mutations of ``base`` (edits within the first ``head`` bytes if given)."""
    n = len(base) if head is None else min(head, len(base))
    return st.one_of(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
            lambda e: _edit(base, e)
        ),
        st.integers(0, len(base)).map(lambda k: base[:k]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(
            lambda t: base[: t[0]] + t[1] + base[t[0] :]
        ),
        st.binary(max_size=256),
    )


def deep(n: int, open_: str = "[") -> str:
    return open_ * n + ("]" if open_ == "[" else "}") * n


# ---- audio loader ---------------------------------------------------------------------


def _wav_bytes(fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    x = (0.1 * np.sin(np.arange(400) / 5)).astype(np.float32)
    sf.write(buf, x, 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


WAV = _wav_bytes("WAV", "PCM_16")
_buf = io.BytesIO()
np.save(_buf, np.zeros(400, np.float32))
NPY = _buf.getvalue()
FLAC = _wav_bytes("FLAC", "PCM_16")


def _wav_with_rate(rate: int, channels: int) -> bytes:
    b = bytearray(WAV)
    struct.pack_into("<I", b, 24, rate)  # fmt chunk: sample rate
    struct.pack_into("<H", b, 22, channels)
    return bytes(b)


audio_files = st.one_of(
    st.tuples(st.just(".wav"), mutated(WAV, head=64)),
    st.tuples(st.just(".flac"), mutated(FLAC, head=128)),
    st.tuples(
        st.just(".wav"),
        st.builds(_wav_with_rate, st.integers(0, 2**32 - 1), st.integers(0, 8)),
    ),
    st.tuples(st.just(".npy"), mutated(NPY, head=128)),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@given(case=audio_files)
def test_audio_loader(case, scratch, record):
    from unitalker.audio import AudioError, load_audio

    suffix, data = case
    f = scratch / f"clip{suffix}"
    f.write_bytes(data)
    try:
        wav = load_audio(f)
    except AudioError:
        record("audio loader", "AudioError")
        return
    assert wav.dtype == np.float32 and wav.ndim == 1 and np.isfinite(wav).all()
    record("audio loader", "ok")


@given(
    n=st.integers(1, 400),
    sr=st.one_of(st.integers(-5, 2**31 - 1), st.floats(allow_nan=True), st.just(2**31 - 1)),
)
def test_audio_resample_rates(n, sr, record):
    from unitalker.audio import AudioError, prepare_waveform

    try:
        out = prepare_waveform(np.zeros(n, np.float32), sr)
    except AudioError:
        record("audio rates", "AudioError")
        return
    assert out.ndim == 1
    record("audio rates", "ok")


# ---- manifest reader ------------------------------------------------------------------

CONV = "3DETF_blendshape_weight"


def _entry(i: int) -> dict:
    return {
        "annot_path": f"annot/c{i}.npy",
        "audio_path": f"audio/c{i}.npy",
        "id": i % 2,
        "annot_type": CONV,
        "dataset": "D6",
        "fps": 30,
    }


VALID_SPLIT = {"info": {"id_list": ["s0", "s1"]}, "data": [_entry(0), _entry(1)]}
FIELDS = ["annot_path", "audio_path", "id", "annot_type", "dataset", "fps"]


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory) -> Path:
    from unitalker import conventions

    root = tmp_path_factory.mktemp("release") / "D6"
    (root / "annot").mkdir(parents=True)
    (root / "audio").mkdir()
    dim = conventions.get(CONV).dim
    np.save(root / "id_template.npy", np.zeros((2, dim), np.float32))
    for i in range(2):
        np.save(root / "annot" / f"c{i}.npy", np.zeros((30, dim), np.float32))
        np.save(root / "audio" / f"c{i}.npy", np.zeros(16000, np.float32))
    return root


def _set(doc: dict, where: str, value) -> dict:
    doc = json.loads(json.dumps(doc))
    if where == "doc":
        return value
    if where in ("info", "data"):
        doc[where] = value
    elif where == "id_list":
        doc["info"]["id_list"] = value
    elif where == "drop":
        doc["data"][0].pop(value if isinstance(value, str) else "fps", None)
    else:
        doc["data"][0][where] = value
    return doc


split_docs = st.one_of(
    st.builds(
        _set,
        st.just(VALID_SPLIT),
        st.sampled_from(["doc", "info", "data", "id_list", *FIELDS]),
        json_values,
    ),
    st.builds(_set, st.just(VALID_SPLIT), st.sampled_from(["annot_path", "audio_path"]), odd_paths),
    st.builds(_set, st.just(VALID_SPLIT), st.just("drop"), st.sampled_from(FIELDS)),
    st.builds(
        _set,
        st.just(VALID_SPLIT),
        st.sampled_from(["id", "fps"]),
        st.integers(-(10**30), 10**30) | st.floats(),
    ),
).map(lambda d: json.dumps(d).encode())
split_bytes = st.one_of(
    split_docs,
    mutated(json.dumps(VALID_SPLIT).encode()),
    st.integers(1, 50_000).map(lambda n: deep(n).encode()),
    st.integers(1, 5_000).map(lambda n: ('{"data": ' + deep(n) + "}").encode()),
)


@given(data=split_bytes, strict=st.booleans())
def test_manifest_reader(data, strict, dataset_folder, record):
    from unitalker.data.check import check_manifest
    from unitalker.data.manifest import ManifestError, load_manifest, read_split_file

    split = dataset_folder / "train.json"
    split.write_bytes(data)
    try:
        read_split_file(split, strict=strict, problems=[])
        load_manifest(dataset_folder.parent, strict=strict).split("train")
        outcome = "ok"
    except ManifestError:
        outcome = "ManifestError"
    # `data check` collects problems, it never raises for a broken split file
    report = check_manifest(dataset_folder.parent, decode_audio=False)
    assert outcome == "ok" or not report.ok
    record("manifest reader", outcome)


# ---- config loader --------------------------------------------------------------------

BASE_CONFIG = """\
data:
  manifest: data/x
  batch_size: 2
  repeats: {S0: 2}
model:
  encoder: {family: builtin, hidden_size: 32, n_layers: 1}
  decoder: {kind: tcn, hidden: 24, id_dim: 8}
  pca_components: 16
optim: {lr: 0.0005, betas: [0.9, 0.99]}
schedule: {steps: 10, warmup_steps: 2}
loss: {alpha: 0.01, beta: 0.0001}
seed: 0
"""
TAGS = [
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!python/object/apply:os.system [echo hi]",
    "!!python/name:os.system",
    "!!timestamp 2001-12-14",
    "!!omap [a: 1]",
    "!!pairs [a: 1]",
    "!!float nan",
    "!!int 12",
    "!custom x",
    "!!str 5",
    "2024-01-01",
    ".inf",
    "-.nan",
    "0x1F",
    "0o17",
    "1_000",
    "~",
    "1" * 5000,
    "'\\ud800'",
    '"\\ud800"',
    "*undefined",
]
KEYS = [
    "seed",
    "pivot_prob",
    "data.batch_size",
    "data.manifest",
    "schedule.steps",
    "optim.lr",
    "optim.betas",
    "model.decoder.hidden",
    "log.every",
    "loss.alpha",
]


def _bomb(depth: int, width: int) -> str:
    lines = ['a0: &a0 ["lol", "lol"]']
    for d in range(1, depth):
        lines.append(f"a{d}: &a{d} [" + ", ".join([f"*a{d - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nseed: *a{depth - 1}\n"


def _line_edit(i: int, value: str) -> str:
    lines = BASE_CONFIG.splitlines()
    k = i % len(lines)
    key = lines[k].split(":")[0]
    lines[k] = f"{key}: {value}"
    return "\n".join(lines) + "\n"


config_texts = st.one_of(
    st.builds(_line_edit, st.integers(0, 50), st.sampled_from(TAGS) | st.text(max_size=30)).map(
        lambda s: s.encode("utf-8", "surrogatepass")
    ),
    mutated(BASE_CONFIG.encode()),
    st.builds(_bomb, st.integers(2, 12), st.integers(2, 12)).map(str.encode),
    st.integers(1, 1_000).map(lambda n: ("seed: " + deep(n)).encode()),
    st.integers(1, 4_000).map(
        lambda n: ("a:\n" + "".join(" " * i + "- x\n" for i in range(0, n, 50))).encode()
    ),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
overrides = st.lists(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(KEYS) | st.text(max_size=10),
        st.sampled_from(TAGS)
        | st.text(max_size=20)
        | st.builds(_bomb, st.integers(2, 9), st.integers(2, 9)).map(
            lambda s: "{" + s.replace("\n", ", ") + "}"
        ),
    ),
    max_size=3,
)


@given(text=config_texts, sets=overrides)
def test_config_loader(text, sets, scratch, record):
    from unitalker.config import ConfigError, load_config
    from unitalker.training.config import TrainConfig

    f = scratch / "config.yaml"
    f.write_bytes(text)
    for path, over in ((f, []), (None, sets)):
        try:
            load_config(TrainConfig, path, over)
            record("config loader", "ok")
        except ConfigError:
            record("config loader", "ConfigError")


# ---- checkpoint reader ----------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch
    from tests.conftest import tiny_model_config

    from unitalker.models.checkpoint import save_model
    from unitalker.models.unitalker import UniTalker

    torch.manual_seed(0)
    cfg = tiny_model_config(heads=["3DETF_blendshape_weight", "flame_params_from_dadhead"])
    return save_model(UniTalker(cfg), tmp_path_factory.mktemp("ckpt") / "tiny")


def _meta_edit(meta: dict, path: list[str], value) -> str:
    meta = json.loads(json.dumps(meta))
    node = meta
    for k in path[:-1]:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node
    if isinstance(node, dict):
        node[path[-1]] = value
    return json.dumps(meta)


META_PATHS = [
    ["format"],
    ["format_version"],
    ["model"],
    ["conventions"],
    ["meta"],
    ["extra"],
    ["model", "decoder", "hidden"],
    ["model", "decoder", "kind"],
    ["model", "heads"],
    ["model", "identities"],
    ["model", "encoder", "hidden_size"],
    ["model", "pivot"],
    ["model", "encoder", "family"],
    ["model", "adaptor_position"],
]


@given(data=st.data())
def test_checkpoint_reader(data, checkpoint, scratch, record):
    from unitalker.models.checkpoint import CheckpointError, load_model

    weights = (checkpoint / "model.safetensors").read_bytes()
    meta = json.loads((checkpoint / "unitalker.json").read_text())
    which = data.draw(st.sampled_from(["weights", "config", "both"]))
    out = scratch / "ckpt"
    out.mkdir(exist_ok=True)
    w = weights
    c = json.dumps(meta).encode()
    if which in ("weights", "both"):
        header = struct.unpack_from("<Q", weights)[0] + 8
        body = st.lists(
            st.tuples(st.integers(header, len(weights) - 1), st.integers(0, 255)),
            min_size=1,
            max_size=8,
        ).map(lambda e: _edit(weights, e))
        w = data.draw(mutated(weights, head=header + 16) | body)
    if which in ("config", "both"):
        c = data.draw(
            st.builds(
                _meta_edit,
                st.just(meta),
                st.sampled_from(META_PATHS),
                json_values | st.integers(0, 10**7),
            ).map(str.encode)
            | st.builds(
                _meta_edit,
                st.just(meta),
                st.just(["extra"]),
                st.dictionaries(st.text(max_size=5), scalars),
            ).map(str.encode)
            | mutated(c)
            | st.integers(1, 50_000).map(lambda n: deep(n).encode())
        )
    (out / "model.safetensors").write_bytes(w)
    (out / "unitalker.json").write_bytes(c)
    try:
        load_model(out, device="cpu")
        record("checkpoint reader", "ok")
    except CheckpointError:
        record("checkpoint reader", "CheckpointError")


@given(data=st.data())
def test_original_checkpoint_reader(data, scratch, record):
    import torch

    from unitalker.models.checkpoint import CheckpointError, read_original_state

    buf = io.BytesIO()
    torch.save({"decoder.learnable_style_emb.weight": torch.zeros(3, 4)}, buf)
    f = scratch / "orig.pt"
    f.write_bytes(data.draw(mutated(buf.getvalue())))
    try:
        read_original_state(f)
        record("original .pt reader", "ok")
    except CheckpointError:
        record("original .pt reader", "CheckpointError")


# ---- stream protocol ------------------------------------------------------------------

VALID_HEADER = {
    "sample_rate": 16000,
    "heads": ["a", "b"],
    "identity": None,
    "lookahead": 0.2,
    "format": "binary",
}
headers = st.one_of(
    st.builds(
        lambda k, v: json.dumps({**VALID_HEADER, k: v}),
        st.sampled_from([*VALID_HEADER, "type", "x"]),
        json_values,
    ),
    json_values.map(json.dumps),
    mutated(json.dumps(VALID_HEADER).encode()),
    st.integers(1, 100_000).map(deep),
    st.integers(1, 100_000).map(lambda n: deep(n, "{")),
    st.integers(1, 10_000).map(lambda n: '{"heads": ' + '{"a": ' * n + "1" + "}" * n + "}"),
    st.text(max_size=100),
    st.none(),
)


@given(text=headers)
def test_stream_header(text, record):
    from unitalker.serve.protocol import ProtocolError, StreamHeader

    try:
        StreamHeader.parse(text)
        record("stream header", "ok")
    except ProtocolError:
        record("stream header", "ProtocolError")


def _containers():
    from unitalker.serve import protocol

    arrays = protocol.pack_arrays(
        {"a": np.ones((3, 2), np.float32), "i": np.arange(4, dtype=np.uint32)}, {"fps": 30}
    )
    frames = protocol.pack_frames(1, 5, np.ones((2, 3), np.float32))
    return arrays, frames


ARRAYS, FRAMES = _containers()


@given(which=st.sampled_from(["arrays", "frames"]), data=st.data())
def test_stream_containers(which, data, record):
    from unitalker.serve.protocol import ProtocolError, unpack_arrays, unpack_frames

    blob = data.draw(mutated(ARRAYS if which == "arrays" else FRAMES))
    try:
        (unpack_arrays if which == "arrays" else unpack_frames)(blob)
        record("stream containers", "ok")
    except ProtocolError:
        record("stream containers", "ProtocolError")
