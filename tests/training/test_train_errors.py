"""Bad input fails with a clear message before any training."""

from __future__ import annotations

import json

import pytest
from train_fixtures import TINY

from unitalker.cli import main


def _run(capsys, *argv):
    rc = main(["train", *argv])
    return rc, capsys.readouterr().err


def test_unknown_key(release, tmp_path, capsys):
    rc, err = _run(capsys, "--set", f"data.manifest={release}", "--set", "optim.lrr=0.1")
    assert rc == 2 and "unknown key" in err and "lrr" in err


def test_wrong_type(release, tmp_path, capsys):
    rc, err = _run(capsys, "--set", f"data.manifest={release}", "--set", "data.batch_size=two")
    assert rc == 2 and "batch_size" in err and "integer" in err


def test_unregistered_convention(release, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "X").mkdir(parents=True)
    split = json.loads((release / "TA" / "train.json").read_text())
    for d in split["data"]:
        d["annot_type"] = "no_such_convention"
        d["annot_path"] = str(release / "TA" / d["annot_path"])
        d["audio_path"] = str(release / "TA" / d["audio_path"])
    (bad / "X" / "train.json").write_text(json.dumps(split))
    rc, err = _run(capsys, "--set", f"data.manifest={bad}", "--set", f"out_dir={tmp_path / 'o'}")
    assert rc == 2 and "no_such_convention" in err
    assert not (tmp_path / "o").exists()


def test_resume_other_architecture(release, tmp_path, capsys):
    sets = [
        x
        for o in [
            f"data.manifest={release}",
            f"out_dir={tmp_path / 'a'}",
            *TINY,
            "schedule.steps=1",
        ]
        for x in ("--set", o)
    ]
    assert main(["train", "--no-progress", *sets]) == 0
    capsys.readouterr()
    rc, err = _run(
        capsys,
        *sets,
        "--set",
        "model.decoder.hidden=16",
        "--set",
        f"out_dir={tmp_path / 'b'}",
        "--resume",
        str(tmp_path / "a" / "model"),
    )
    assert rc == 2 and "another architecture" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "pivot_prob=2.0",
        "precision=fp8",
        "schedule.steps=-5",  # used to write an untrained model as if trained
        "schedule.epochs=0",  # with steps 0: nothing to train
        "data.batch_size=0",
        "data.max_seconds=0",
        "optim.lr=-1e-4",
        "optim.lr=.nan",
        "optim.betas=[0.9, 1.5]",
        "loss.alpha=-1",
        "log.keep_last=-1",
        "model.decoder.dropout=1.5",
        "model.pca_components=-3",
        "seed=-1",
    ],
)
def test_bad_values(release, tmp_path, capsys, bad):
    out = tmp_path / "o"
    rc, err = _run(
        capsys, "--set", f"data.manifest={release}", "--set", f"out_dir={out}", "--set", bad
    )
    key = bad.split("=")[0].split(".")[-1]
    assert rc == 2 and "bad config" in err and (key in err or "nothing to train" in err), err
    assert "Traceback" not in err
    assert not out.exists()


def test_cuda_device_without_cuda(release, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, err = _run(
        capsys,
        "--set",
        f"data.manifest={release}",
        "--set",
        "device=cuda",
        "--set",
        f"out_dir={tmp_path / 'o'}",
    )
    assert rc == 2 and "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
