"""Typed training configuration (``unitalker train --config X.yaml --set optim.lr=3e-4``).

Every section is a frozen dataclass; :func:`unitalker.config.load_config` rejects unknown
keys and wrong types before any work starts. Only :mod:`unitalker.training.builders`
reads this config; the trainer's parts take explicit arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from unitalker.config import check_range
from unitalker.data.augment import AugmentConfig
from unitalker.models.config import DecoderConfig, EncoderConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from and how they are batched.

    Attributes:
        manifest: a split file, a dataset folder or a root of dataset folders (the
            original release layout); all its datasets are mixed.
        datasets: keep only these dataset keys (empty: all).
        repeats: dataset key -> repetition factor per epoch (missing: the registry's,
            10, 5, 4, 1, .. for D0..D7).
        fraction: keep this fraction of each training set (Fig. 4 curves), nested over seeds.
        train_split / val_split: split names (val_split "" = no validation).
        batch_size: clips per batch (one convention per batch).
        max_seconds / min_seconds: training clip cut / drop (20 s / 0.5 s as the original).
        cache_dir: decoded-audio disk cache.
        num_workers: DataLoader workers.
        augment: on-the-fly acoustic augmentation of the training set
            (:class:`~unitalker.data.augment.AugmentConfig`; off unless ``enabled``).
    """

    manifest: str = ""
    datasets: tuple[str, ...] = ()
    repeats: dict[str, int] = field(default_factory=dict)
    fraction: float = 1.0
    train_split: str = "train"
    val_split: str = "val"
    batch_size: int = 1
    max_seconds: float = 20.0
    min_seconds: float = 0.5
    cache_dir: str | None = None
    num_workers: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for k, r in self.repeats.items():
            check_range(f"repeats.{k}", r, 0)
        check_range("fraction", self.fraction, 0, 1, lo_open=True)
        check_range("batch_size", self.batch_size, 1)
        check_range("max_seconds", self.max_seconds, 0, lo_open=True)
        check_range("min_seconds", self.min_seconds, 0)
        if self.min_seconds > self.max_seconds:
            raise ValueError(
                f"min_seconds ({self.min_seconds}) must not exceed max_seconds ({self.max_seconds})"
            )
        check_range("num_workers", self.num_workers, 0)


@dataclass(frozen=True)
class ModelSection:
    """The network to train, or the checkpoint to start from.

    Attributes:
        encoder / decoder: the architecture (ignored for the parts loaded by ``init_from``).
        pca_components: K of PCA heads (vertex conventions); 0 = no PCA (ablation).
        head_layers: layers per output head.
        adaptor_position: 0, 1 (default) or 2.
        pivot: add the pivot identity row (and replace GT identities by it in training).
        pretrained_encoder: load the HF encoder's weights from ``encoder.name_or_path``.
        init_from: a trained checkpoint to start from (fine-tuning, see ``finetune``).
        visemes: give the model a viseme classifier on the encoder's output
            (:attr:`~unitalker.models.config.ModelConfig.visemes`, the articulation model's
            15 classes), trained by ``loss.viseme``; a fine-tune adds it to a checkpoint
            without one.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    pca_components: int = 512
    head_layers: int = 1
    adaptor_position: int = 1
    pivot: bool = True
    pretrained_encoder: bool = False
    init_from: str | None = None
    visemes: bool = False

    def __post_init__(self) -> None:
        check_range("pca_components", self.pca_components, 0)
        check_range("head_layers", self.head_layers, 1)


@dataclass(frozen=True)
class OptimConfig:
    """Adam, constant learning rate (the original: 1e-4)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    accum_steps: int = 1

    def __post_init__(self) -> None:
        check_range("lr", self.lr, 0, 1, lo_open=True)
        check_range("weight_decay", self.weight_decay, 0)
        for i, b in enumerate(self.betas):
            check_range(f"betas[{i}]", b, 0, 1)
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {list(self.betas)}")
        check_range("grad_clip", self.grad_clip, 0)
        check_range("accum_steps", self.accum_steps, 1)


@dataclass(frozen=True)
class ScheduleConfig:
    """How long to train and when the encoder unfreezes.

    ``steps`` > 0 wins over ``epochs``. Warm-up (decoder warm-up, DW): the whole audio
    encoder is frozen for ``warmup_steps`` optimizer steps if > 0, else for
    ``warmup_epochs`` epochs; afterwards everything but the encoder's local feature
    extractor trains, as the original. ``freeze_features`` = False trains it too.
    """

    epochs: int = 100
    steps: int = 0
    warmup_epochs: int = 1
    warmup_steps: int = 0
    freeze_features: bool = True

    def __post_init__(self) -> None:
        check_range("epochs", self.epochs, 0)
        check_range("steps", self.steps, 0)
        check_range("warmup_epochs", self.warmup_epochs, 0)
        check_range("warmup_steps", self.warmup_steps, 0)
        if self.steps == 0 and self.epochs == 0:
            raise ValueError("nothing to train: set steps > 0 or epochs > 0")


CONTACT_FRAMES = ("label", "closures", "all")  # the frames loss.contact counts


@dataclass(frozen=True)
class LossConfig:
    """Eq. 2: ``L = l(verts) + alpha * l(pca) + beta * l(params)``.

    Attributes:
        alpha: PCA-coefficient MSE weight (0.01).
        beta: parameter / blendshape-weight MSE weight (1e-4).
        vertex: weight of the vertex term (1).
        lip: weight of an extra vertex term on the lip region alone (0: off, Eq. 2 as in
            the paper). The vertex term averages over the whole face, where the lips are a
            few percent of the vertices; this one averages over the convention's registered
            ``lip`` region (conventions without one get none), so a short closure of the
            lips weighs as much as the rest of the face.
        velocity: weight of an MSE on the vertices' frame-to-frame differences (0: off):
            it penalises motion that is late, early or smoothed over, where the per-frame
            MSE lets a short closure be met halfway.
        contact: weight of a lip-contact term (0: off): the squared error of the gap
            between the upper and lower lip midline vertices on the frames where the label's
            lips are closed (gap within ``contact_tol`` of the open range from the rest
            gap: bilabials and rest), after Imitator's lip contact loss. Conventions whose
            lip midline is known (the A2F-Synth ones, :func:`unitalker.evaluation.voices.
            mouth_gauge`) get it; others get none. Every setting tried on the default
            model bought closures with LVE (docs/a2f-synth.md).
        contact_tol: the closed threshold of ``contact`` (0.1, the closure metric's).
        contact_frames: ``label`` (the frames where the label's lips are closed),
            ``closures`` (the label's closed runs of at most 0.2 s between open frames: the
            bilabials, not the rests) or ``all`` (every frame: a lip-gap MSE).
        viseme: weight of a phonetic auxiliary term (0: off): the cross-entropy of the
            model's viseme classifier (``model.visemes``) against each frame's viseme from
            the clip's A2F-Synth phoneme timeline (:mod:`unitalker.data.visemes`; clips
            without one add nothing). It asks the encoder for the mouth shape's class,
            whatever the voice, where the motion terms weigh a class by its millimetres.
            The motion terms are small numbers (about 1e-6 for the A2F-Synth
            conventions), so useful weights are too.
        flame_model: a FLAME model file (npz, or the FLAME 2020 pickle, read without
            executing code) for the vertex term of ``flame_params_from_dadhead``.
        flame_face_indices: ``.npy`` vertex indices the FLAME vertex term compares
            (the original's ``flame_humanface_index.npy``); empty = all vertices.
    """

    alpha: float = 0.01
    beta: float = 1e-4
    vertex: float = 1.0
    lip: float = 0.0
    velocity: float = 0.0
    contact: float = 0.0
    contact_tol: float = 0.1
    contact_frames: str = "label"
    viseme: float = 0.0
    flame_model: str | None = None
    flame_face_indices: str | None = None

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0)
        check_range("beta", self.beta, 0)
        check_range("vertex", self.vertex, 0)
        check_range("lip", self.lip, 0)
        check_range("velocity", self.velocity, 0)
        check_range("contact", self.contact, 0)
        check_range("contact_tol", self.contact_tol, 0)
        check_range("viseme", self.viseme, 0)
        if self.contact_frames not in CONTACT_FRAMES:
            raise ValueError(
                f"contact_frames must be one of {CONTACT_FRAMES}, got {self.contact_frames!r}"
            )


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning from ``model.init_from``.

    Attributes:
        reinit_decoder: re-initialise the motion decoder (keep only the encoder), as the
            paper's unseen-annotation experiment.
        reinit_heads: re-initialise (zero) the heads of conventions in the training data.
        drop_other_heads: keep only heads of conventions in the training data.
        trainable: module-name prefixes that train (empty = all). Aliases: ``heads``,
            ``decoder``, ``encoder``, ``pca``; e.g.
            ``[heads, audio_encoder.transformer.layers.3]``.
    """

    reinit_decoder: bool = False
    reinit_heads: bool = False
    drop_other_heads: bool = False
    trainable: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogConfig:
    """Logging and checkpoints (every N optimizer steps; 0 = off)."""

    every: int = 10
    ckpt_every: int = 0
    val_every: int = 0
    keep_last: int = 2
    tensorboard: bool = True

    def __post_init__(self) -> None:
        check_range("every", self.every, 0)
        check_range("ckpt_every", self.ckpt_every, 0)
        check_range("val_every", self.val_every, 0)
        check_range("keep_last", self.keep_last, 0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``unitalker train`` needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pivot_prob: float = 0.1
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    out_dir: str = "runs/unitalker"
    seed: int = 0
    conventions_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_range("pivot_prob", self.pivot_prob, 0, 1)
        check_range("seed", self.seed, 0, 2**32 - 1)
        if self.loss.viseme > 0 and not self.model.visemes:
            raise ValueError(
                "loss.viseme needs the viseme classifier it trains: set model.visemes: true"
            )
