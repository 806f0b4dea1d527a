"""Every numeric option is range-checked where argparse parses it, and says so in --help."""

from __future__ import annotations

import argparse
import re

import pytest

from unitalker.cli import build_parser, main
from unitalker.commands._args import FPS, Number


def _parsers(parser: argparse.ArgumentParser, name: str = "unitalker"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


ALL = list(_parsers(build_parser()))
NUMERIC = [
    (name, a)
    for name, p in ALL
    for a in p._actions
    if a.type in (int, float) or isinstance(a.type, Number)
]


def test_there_are_numeric_options():
    assert len(NUMERIC) > 30


@pytest.mark.parametrize("name,action", NUMERIC, ids=lambda x: getattr(x, "dest", x))
def test_numeric_option_is_checked_and_documented(name, action):
    assert isinstance(action.type, Number), f"{name} {action.option_strings}: bare {action.type}"
    parser = dict(ALL)[name]
    text = " ".join(parser.format_help().split())
    assert action.type.describe() in text, f"{name} {action.option_strings}: range not in --help"
    if action.default is not None and not isinstance(action.default, list):
        assert action.type.contains(action.default), f"{name} {action.option_strings} default"


def test_fps_range_is_the_manifests():
    from unitalker.data.manifest import MAX_FPS

    assert FPS.hi == MAX_FPS


@pytest.mark.parametrize(
    "kind,lo,hi,good,bad",
    [
        (float, 0, 5, ["0", "5", "2.5"], ["-0.1", "5.01", "1e9", "nan", "inf", "x", ""]),
        (int, 1, None, ["1", "77"], ["0", "-1", "1.5", "2e3", "one"]),
    ],
)
def test_number_type(kind, lo, hi, good, bad):
    t = Number(kind, lo, hi)
    for g in good:
        assert t.contains(t(g))
    for b in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            t(b)


def test_open_bound_is_said():
    t = Number(float, 0, lo_open=True)
    assert t.describe() == "number > 0"
    with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
        t("0")


@pytest.mark.parametrize(
    "argv,option",
    [
        (["animate", "x.wav", "--window", "-5"], "--window"),
        (["animate", "x.wav", "--overlap", "-1"], "--overlap"),
        (["stream", "--lookahead", "1e9"], "--lookahead"),
        (["stream", "--chunk", "0"], "--chunk"),
        (["stream", "--context", "-2"], "--context"),
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--max-streams", "0"], "--max-streams"),
        (["loadtest", "--clients", "0"], "--clients"),
        (["synth", "generate", "-o", "x", "--workers", "0"], "--workers"),
        (["pca", "fit", "m.json", "-o", "p.npz", "--components", "0"], "--components"),
        (["bench", "--repeats", "0"], "--repeats"),
        (["evaluate", "m", "d", "--render", "-1"], "--render"),
    ],
)
def test_bad_numbers_are_usage_errors(argv, option, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "expected a" in err and "Traceback" not in err


def test_animate_window_overlap_and_identity(tmp_path, capsys):
    import numpy as np
    import soundfile as sf
    from tests.inference.infer_testdata import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "tiny")
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(8000, np.float32), 16000)
    out = tmp_path / "out"
    for extra, needle in [
        (["--window", "0.5"], "at least 1 second"),
        (["--window", "4", "--overlap", "4"], "shorter than --window"),
        (["--identity", "-1"], "out of range"),
        (["--identity", "99"], "out of range"),
    ]:
        rc = main(["animate", "-q", str(wav), "-m", str(ckpt), "-o", str(out), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err, (extra, err)
        assert not out.exists()
    assert re.search(r"0 to \d+", err)
