"""Preview videos: streams, durations and frame counts read back with PyAV; the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from tests.meshdata import FPS

from unitalker.animation import Animation
from unitalker.audio import SAMPLE_RATE, write_wav
from unitalker.export import write_outputs
from unitalker.render import renderer as renderer_module
from unitalker.render.video import render_video, resample_animation

needs_egl = pytest.mark.skipif(not renderer_module.egl_available(), reason="no EGL here")


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _probe(path):
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        v_dur = float(v.duration * v.time_base)
        a_dur = float(a.duration * a.time_base) if a is not None else None
        n = sum(1 for _ in c.decode(video=0))
        return {
            "frames": n,
            "v_dur": v_dur,
            "a_dur": a_dur,
            "size": (v.width, v.height),
            "rate": float(v.average_rate),
        }


def test_resample_animation() -> None:
    data = np.arange(4, dtype=np.float32)[:, None]  # 4 frames at 10 fps
    a = resample_animation(
        Animation("flame_params_from_dadhead", 10.0, np.repeat(data, 413, 1)), 20.0, 9
    )
    np.testing.assert_allclose(a.data[:, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3, 3])


@needs_egl
def test_mp4_streams_and_duration(sphere_anim, rig_anim, norig_conv, tmp_path) -> None:
    audio = _tone(1.0)  # heads are 20 / 15 frames at 30 fps: the video follows the audio
    results = {
        sphere_anim.convention: sphere_anim,
        rig_anim.convention: rig_anim,
        norig_conv.name: Animation(norig_conv.name, 25.0, np.random.rand(25, 3)),
    }
    seen = []
    path = render_video(
        results, audio, tmp_path / "v.mp4", size=64, progress=lambda d, t: seen.append((d, t))
    )
    info = _probe(path)
    assert info["frames"] == 30 and seen[-1] == (30, 30)
    assert info["size"] == (3 * 64, 64 + 28)
    assert info["v_dur"] == pytest.approx(1.0, abs=1 / FPS)
    assert info["a_dur"] == pytest.approx(1.0, abs=0.1)
    with pytest.raises(FileExistsError):
        render_video(results, audio, path, size=64)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_mp4_bars_only_silent_and_fps(norig_conv, tmp_path) -> None:
    # No mesh, so this works without EGL too.
    anim = Animation(norig_conv.name, 30.0, np.random.rand(45, 3))
    path = render_video({norig_conv.name: anim}, None, tmp_path / "bars.mp4", fps=20, size=50)
    info = _probe(path)
    assert info["a_dur"] is None and info["frames"] == 30 and info["rate"] == 20
    assert info["size"] == (50, 50 + 28)


def test_mp4_through_write_outputs(norig_conv, tmp_path) -> None:
    anim = Animation(norig_conv.name, 30.0, np.random.rand(12, 3))
    paths = write_outputs({norig_conv.name: anim}, tmp_path, "clip", "all", audio=_tone(0.4))
    assert {p.name for p in paths} == {
        "clip.npz",
        f"clip_{norig_conv.name}.json",
        f"clip_{norig_conv.name}.csv",
        "clip.mp4",
    }
    info = _probe(tmp_path / "clip.mp4")
    assert info["frames"] == 12 and info["a_dur"] == pytest.approx(0.4, abs=0.1)


def test_failed_render_leaves_nothing(norig_conv, tmp_path, monkeypatch) -> None:
    from unitalker.render import layout

    def broken(self, index):
        raise RuntimeError("panel broke")

    monkeypatch.setattr(layout.Layout, "frame", broken)
    anim = Animation(norig_conv.name, 30.0, np.random.rand(5, 3))
    with pytest.raises(RuntimeError, match="panel broke"):
        render_video({norig_conv.name: anim}, _tone(0.2), tmp_path / "x.mp4", size=32)
    assert list(tmp_path.iterdir()) == []


def test_failed_encoder_thread_raises_and_leaves_nothing(norig_conv, tmp_path, monkeypatch) -> None:
    from unitalker.render import video

    def broken(self, frame):
        raise RuntimeError("encoder broke")

    monkeypatch.setattr(video._Encoder, "_mux", broken)
    anim = Animation(norig_conv.name, 30.0, np.random.rand(40, 3))  # more frames than the queue
    with pytest.raises(RuntimeError, match="encoder broke"):
        render_video({norig_conv.name: anim}, _tone(1.3), tmp_path / "x.mp4", size=32)
    assert list(tmp_path.iterdir()) == []


def test_cli_render(sphere_anim, norig_conv, tmp_path, capsys) -> None:
    from unitalker.cli import main

    bars = Animation(norig_conv.name, 30.0, np.random.rand(12, 3))
    results = {norig_conv.name: bars}
    heads = [norig_conv.name]
    if renderer_module.egl_available():
        results[sphere_anim.convention] = sphere_anim
        heads.insert(0, sphere_anim.convention)
    write_outputs(results, tmp_path, "clip", "npz")
    wav = tmp_path / "speech.wav"
    write_wav(wav, _tone(0.5))
    out = tmp_path / "video.mp4"
    argv = [
        "render",
        str(tmp_path / "clip.npz"),
        str(wav),
        "-o",
        str(out),
        "--size",
        "48",
        "--no-progress",
    ]
    assert main([*argv, "--heads", *heads]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    info = _probe(out)
    assert info["size"] == (48 * len(heads), 48 + 28) and info["frames"] == 15
    assert main(argv) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--heads", "nope"]) == 2
    assert "heads not in" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--fps", "10"]) == 0
    assert _probe(out)["frames"] == 5


def test_cli_render_help(capsys) -> None:
    from unitalker.cli import main

    with pytest.raises(SystemExit) as e:
        main(["render", "--help"])
    assert e.value.code == 0
    assert "OUTPUT.npz" in capsys.readouterr().out
