"""The paper's claims in miniature on A2F-Synth: one function per experiment.

Each trains small models with :func:`unitalker.training.run.train`, evaluates them with
:func:`unitalker.evaluation.evaluate.evaluate` on the test split, and writes a markdown
table (and a PNG when matplotlib is installed) named after the experiment into
``out_dir``. Training runs go under ``work_dir``. Numbers are reported as measured: LVE
is the per-sequence mean (the original UniTalker's averaging) in the dataset's units.

=================  ======================================================  ============
experiment         question                                                paper
=================  ======================================================  ============
table4             multi-head model vs a one-head model on every dataset   Table 4
                   converted into the target's convention
table5             single-dataset models vs one unified model vs           Table 5
                   unified + fine-tuned per dataset
pivot              with / without pivot identity, inference with the GT,   Fig. 3
                   a cross-dataset and the pivot identity
pca-warmup         with / without PCA and decoder warm-up, single and      Fig. 5
                   multi-dataset, two learning rates
finetune-fraction  fine-tune UniTalker-[others] vs a bare encoder on an    Fig. 4
                   unseen convention at decreasing data fractions
finetune-takes     fine-tune the default model on 1, 2, 5 minutes of      (issue 15)
                   Live Link Face takes of a new performer
=================  ======================================================  ============

The built-in encoder has no self-supervised pre-training, so the "bare encoder" of the
Fig. 4 analogue is a randomly initialised one; the paper's is wav2vec2-xlsr-53.
"""

from __future__ import annotations

from collections.abc import Callable

from unitalker.experiments.common import QUICK, SMALL, Setup
from unitalker.experiments.paper import (
    PCA_WARMUP,
    finetune_fraction,
    pca_warmup,
    pivot,
    table4,
    table5,
)
from unitalker.experiments.takes import finetune_takes

EXPERIMENTS: dict[str, Callable[[Setup, list[str]], str]] = {
    "table4": table4,
    "finetune-takes": finetune_takes,
    "table5": table5,
    "pivot": pivot,
    "pca-warmup": pca_warmup,
    "finetune-fraction": finetune_fraction,
}
DEFAULT_DATASETS = {
    "table4": ["S0", "S1", "S2"],  # one more conversion kind per setting (S3: FLAME-like)
    "finetune-takes": [],
    "table5": ["S0", "S1", "S2"],
    "pivot": ["S0", "S2", "S3"],  # test speakers seen in training: their GT rows trained
    "pca-warmup": ["S0", "S1", "S2"],
    "finetune-fraction": ["S0", "S1", "S2", "S3", "S4", "S5"],
}
DEFAULT_STEPS = {
    "finetune-takes": 0,  # the recipe's own
    "table4": 100,
    "table5": 300,
    "pivot": 900,
    "pca-warmup": 300,
    "finetune-fraction": 400,
}


__all__ = [
    "DEFAULT_DATASETS",
    "DEFAULT_STEPS",
    "EXPERIMENTS",
    "PCA_WARMUP",
    "QUICK",
    "SMALL",
    "Setup",
    "finetune_fraction",
    "finetune_takes",
    "pca_warmup",
    "pivot",
    "table4",
    "table5",
]
