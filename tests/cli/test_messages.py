"""Error messages a user can act on: the path once, the right diagnosis, clean lines."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from tests.inference.infer_testdata import save_tiny_checkpoint

from unitalker.cli import CLIError, main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny")


def test_failed_file_names_its_path_once(tmp_path, ckpt, capsys):
    empty = tmp_path / "X.wav"
    empty.write_bytes(b"")
    rc = main(["animate", "-q", str(empty), "-m", str(ckpt), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [ln for ln in err.splitlines() if "empty file" in ln]
    assert lines and all(ln.count("X.wav") == 1 for ln in lines), err


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("kind", ["other_state_dict", "evil_pickle", "garbage"])
def test_pickle_given_as_model(tmp_path, kind, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "model.pt"
    if kind == "other_state_dict":
        torch.save({"layer.weight": torch.zeros(2, 2)}, f)
    elif kind == "evil_pickle":
        f.write_bytes(pickle.dumps(_Evil()))
    else:
        f.write_bytes(b"\x80\x04garbage")
    wav = tmp_path / "a.npy"
    np.save(wav, np.zeros(8000, np.float32))
    assert main(["animate", str(wav), "-m", str(f), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not an original UniTalker release checkpoint" in err, err
    assert "an original-release checkpoint; convert" not in err
    assert "weights_only=False" not in err and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()


def test_original_release_layout_is_recognised(tmp_path, capsys):
    f = tmp_path / "UniTalker-B-D0-D7.pt"
    torch.save({"decoder.learnable_style_emb.weight": torch.zeros(3, 4)}, f)
    wav = tmp_path / "a.npy"
    np.save(wav, np.zeros(8000, np.float32))
    assert main(["animate", str(wav), "-m", str(f), "-o", str(tmp_path / "o")]) == 2
    assert "an original-release checkpoint; convert it first" in capsys.readouterr().err


def test_format_skipped_for_some_heads_is_said_once(tmp_path, ckpt, caplog):
    from unitalker.export import base

    base._WARNED.clear()
    files = []
    for i in range(3):
        files.append(tmp_path / f"a{i}.wav")
        sf.write(str(files[-1]), np.zeros(8000, np.float32), 16000)
    with caplog.at_level(logging.WARNING, logger="unitalker.export.base"):
        rc = main(
            [
                "animate",
                "-q",
                *map(str, files),
                "-m",
                str(ckpt),
                "-o",
                str(tmp_path / "o"),
                "--format",
                "npz,csv",
            ]
        )
    assert rc == 0
    skips = [r for r in caplog.records if "skipping csv" in r.getMessage()]
    assert len(skips) == 1, [r.getMessage() for r in skips]


def test_error_is_not_glued_to_a_progress_bar(capsys, monkeypatch):
    import sys

    from tqdm import tqdm

    def fail(args):
        bar = tqdm(total=10, file=sys.stderr, desc="work")
        bar.update(3)
        raise CLIError("something went wrong")

    import argparse

    from unitalker.cli import build_parser

    args = build_parser().parse_args(["models"])
    args.func = fail  # a command that fails while its progress bar is open
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: args)
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "something went wrong" in ln)
    assert line.startswith("unitalker models: error:"), repr(err)
