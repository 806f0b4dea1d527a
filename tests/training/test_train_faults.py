"""Training faults say what happened: full disk, unreadable resume state, killed writes."""

from __future__ import annotations

import errno
import pickle

import pytest
import torch
from train_fixtures import TINY

from unitalker.cli import main


def _sets(release, out, *extra):
    return [
        x
        for o in [f"data.manifest={release}", f"out_dir={out}", *TINY, *extra]
        for x in ("--set", o)
    ]


def test_full_disk_is_a_clear_error(release, tmp_path, capsys, monkeypatch):
    real_save = torch.save

    def full(obj, f, *a, **k):  # the trainer-state writer hits ENOSPC
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    rc = main(
        ["train", "--no-progress", *_sets(release, out, "schedule.steps=2", "log.ckpt_every=1")]
    )
    monkeypatch.setattr(torch, "save", real_save)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "no space left on device" in err.lower() and "free some disk space" in err
    assert "step_0000001" in err and "checkpoint" in err
    # nothing half-written: no temporaries, no trainer state that could be resumed
    assert not list(out.rglob(".tmp-*"))
    assert not list(out.rglob("trainer_state.pt"))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "evil_pickle", "not_a_dict"])
def test_unreadable_trainer_state_on_resume(release, tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert main(["train", "--no-progress", *_sets(release, out, "schedule.steps=1")]) == 0
    state = out / "model" / "trainer_state.pt"
    raw = state.read_bytes()
    if damage == "garbage":
        state.write_bytes(b"\x00garbage" * 10)
    elif damage == "truncated":
        state.write_bytes(raw[: len(raw) // 2])
    elif damage == "evil_pickle":
        target = str(tmp_path / "PWNED")

        class Evil:
            def __reduce__(self):
                return (eval, (f"__import__('pathlib').Path({target!r}).touch()",))

        state.write_bytes(pickle.dumps(Evil()))
    else:
        torch.save([1, 2, 3], state)
    capsys.readouterr()
    rc = main(
        [
            "train",
            "--no-progress",
            *_sets(release, out, "schedule.steps=2"),
            "--resume",
            str(out / "model"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert "trainer_state.pt" in err and "cannot read the trainer state" in err
    assert "weights_only=False" not in err and "weights_only" not in err
    assert not (tmp_path / "PWNED").exists()


def test_resume_of_a_missing_folder(capsys, tmp_path):
    rc = main(["train", "--resume", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope" in err and "no such folder" in err and "manifest" not in err


def test_leftover_temporaries_are_removed_on_next_start(release, tmp_path):
    from unitalker.training.trainer import clean_stale_temporaries

    out = tmp_path / "run"
    step = out / "checkpoints" / "step_0000001"
    step.mkdir(parents=True)
    (step / ".tmp-abc.pt").write_bytes(b"half")
    (step / ".tmp-xyz").mkdir()
    (step / ".tmp-xyz" / "model.safetensors").write_bytes(b"half")
    (out / "model").mkdir()
    (out / "model" / ".tmp-1.safetensors").write_bytes(b"half")
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / ".tmp-keep").write_text("not in a write location: kept")
    assert main(["train", "--no-progress", *_sets(release, out, "schedule.steps=1")]) == 0
    assert not list((out / "checkpoints").rglob(".tmp-*"))
    assert not list((out / "model").glob(".tmp-*"))
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine" / ".tmp-keep").exists()
    assert clean_stale_temporaries(out) == []
