"""A2F-Synth datasets: a miniature of the paper's Table 1 (unequal sizes, mixed
conventions, languages, domains, native frame rates and on-disk layouts).

==  ===============  ======================  ========  =====  ===========  =========
key name             convention              layout    fps    languages    domain
==  ===============  ======================  ========  =====  ===========  =========
S0  SynBIWI          synth_head_vertices     biwi      25     en           speech
S1  SynVOCA          synth_head2_vertices    vocaset   60     en           speech
S2  SynHDTF          synth_arkit52           3detf     30     en           speech
S3  SynFLAME         synth_flame_params      release   30     en es de fr  speech
S4  SynMandarin      synth_arkit52           release   60     zh           speech
S5  SynSong          synth_arkit52           release   60     en es zh     song
==  ===============  ======================  ========  =====  ===========  =========
"""

from __future__ import annotations

from dataclasses import dataclass

# The real datasets' subject splits, which the synthetic look-alikes S0 / S1 copy.
from unitalker.data.convert import BIWI_TRAIN_SUBJECTS as BIWI_TRAIN
from unitalker.data.convert import VOCASET_TEST as VOCA_TEST
from unitalker.data.convert import VOCASET_TRAIN as VOCA_TRAIN
from unitalker.data.convert import VOCASET_VAL as VOCA_VAL

# eSpeak voices per language and variants (files in espeak-ng-data/voices/!v).
# Variants with a "breath" setting (f2, f3, f5, ...) are left out on purpose: their
# breath noise is not reproducible between processes, which would break determinism.
VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en", "en-us", "en-gb-x-rp", "en-029"),
    "es": ("es", "es-419"),
    "de": ("de",),
    "fr": ("fr", "fr-be"),
    "zh": ("cmn-latn-pinyin",),
}
VARIANTS_F = (
    "f1",
    "f4",
    "anika",
    "belinda",
    "linda",
    "steph",
    "aunty",
    "Andrea",
    "Annie",
    "shelby",
)
VARIANTS_M = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "adam",
    "boris",
    "david",
    "edward",
    "john",
    "paul",
)


@dataclass(frozen=True)
class DatasetSpec:
    """How one A2F-Synth dataset is generated.

    Attributes:
        key, name, convention, layout (``biwi``/``vocaset``/``3detf``/``release``),
        folder: output folder name; fps: native (stored) frame rate; languages; domain;
        subjects: per-preset subject names; clips: per-preset clips per subject;
        seconds: (min, max) clip length target.
    """

    key: str
    name: str
    convention: str
    layout: str
    folder: str
    fps: float
    languages: tuple[str, ...]
    domain: str
    subjects: dict[str, tuple[str, ...]]
    clips: dict[str, int]
    seconds: tuple[float, float]
    repeat: int = 1


def _ids(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i:02d}" for i in range(n))


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "S0",
        "SynBIWI",
        "synth_head_vertices",
        "biwi",
        "S0_synbiwi",
        25.0,
        ("en",),
        "speech",
        {"tiny": ("F2", "M3"), "bench": BIWI_TRAIN},
        {"tiny": 4, "bench": 40},
        (1.6, 3.2),
        repeat=10,
    ),
    DatasetSpec(
        "S1",
        "SynVOCA",
        "synth_head2_vertices",
        "vocaset",
        "S1_synvoca",
        60.0,
        ("en",),
        "speech",
        {
            "tiny": (VOCA_TRAIN[0], VOCA_TRAIN[1], VOCA_VAL[0], VOCA_TEST[0]),
            "bench": VOCA_TRAIN + VOCA_VAL + VOCA_TEST,
        },
        {"tiny": 2, "bench": 10},
        (2.0, 4.0),
        repeat=5,
    ),
    DatasetSpec(
        "S2",
        "SynHDTF",
        "synth_arkit52",
        "3detf",
        "S2_syn3detf",
        30.0,
        ("en",),
        "speech",
        {"tiny": _ids("HD", 3), "bench": _ids("HD", 40)},
        {"tiny": 2, "bench": 6},
        (5.0, 9.0),
    ),
    DatasetSpec(
        "S3",
        "SynFLAME",
        "synth_flame_params",
        "release",
        "S3_synflame",
        30.0,
        ("en", "es", "de", "fr"),
        "speech",
        {"tiny": _ids("FF", 4), "bench": _ids("FF", 24)},
        {"tiny": 3, "bench": 5},
        (4.0, 8.0),
    ),
    DatasetSpec(
        "S4",
        "SynMandarin",
        "synth_arkit52",
        "release",
        "S4_synmandarin",
        60.0,
        ("zh",),
        "speech",
        {"tiny": _ids("ZH", 2), "bench": _ids("ZH", 8)},
        {"tiny": 3, "bench": 12},
        (3.0, 6.0),
    ),
    DatasetSpec(
        "S5",
        "SynSong",
        "synth_arkit52",
        "release",
        "S5_synsong",
        60.0,
        ("en", "es", "zh"),
        "song",
        {"tiny": _ids("SG", 2), "bench": _ids("SG", 6)},
        {"tiny": 3, "bench": 8},
        (6.0, 10.0),
    ),
)

PRESETS: tuple[str, ...] = ("tiny", "bench")


def spec(key: str) -> DatasetSpec:
    for d in DATASETS:
        if d.key == key:
            return d
    raise KeyError(f"unknown A2F-Synth dataset {key!r}; known: {[d.key for d in DATASETS]}")
