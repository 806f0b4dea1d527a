"""``usd``: every stage opens in ``pxr`` itself, validates, and plays back the npz's values."""

from __future__ import annotations

import numpy as np
import pytest
from tests.meshdata import FPS, RIG_NAMES, random_animation, require_rig

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.export import ExportError, formats_for, get_writer, load_npz, write_outputs

pxr = pytest.importorskip("pxr", reason="usd-core not installed (pip install 'unitalker[usd]')")
from pxr import Usd, UsdGeom, UsdMedia, UsdSkel, UsdValidation  # noqa: E402

MESH_REGISTRY = [c.name for c in conventions.all_conventions() if c.has_mesh]


def _validation_errors(path) -> list[str]:
    """Every error USD's own validators (UsdValidation, successor of the ComplianceChecker)
    report on the stage, minus the usdz-package checks, which concern .usdz files only."""
    reg = UsdValidation.ValidationRegistry()
    validators = [
        v
        for v in reg.GetOrLoadAllValidators()
        if "Usdz" not in v.GetMetadata().name and "Package" not in v.GetMetadata().name
    ]
    stage = Usd.Stage.Open(str(path))
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    return [f"{e.GetName()}: {e.GetMessage()}" for e in errors]


def _open(path):
    stage = Usd.Stage.Open(str(path))
    assert stage is not None
    return stage


def _check_timing(stage, n_frames: int, fps: float) -> None:
    assert stage.GetTimeCodesPerSecond() == fps
    assert stage.GetFramesPerSecond() == fps
    assert stage.GetStartTimeCode() == 0
    assert stage.GetEndTimeCode() == n_frames - 1
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0


def _skinned_points(stage, time: float) -> np.ndarray:
    """Points of /Head/Face at ``time`` as UsdSkel computes them (blend shapes applied)."""
    face = stage.GetPrimAtPath("/Head/Face")
    binding = UsdSkel.BindingAPI(face)
    query = UsdSkel.BlendShapeQuery(binding)
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(stage.GetPrimAtPath("/Head"))
    cache.Populate(root, Usd.PrimDefaultPredicate)
    skinning = cache.GetSkinningQuery(face)
    skel_query = cache.GetSkelQuery(UsdSkel.Skeleton(stage.GetPrimAtPath("/Head/Skeleton")))
    weights = skel_query.GetAnimQuery().ComputeBlendShapeWeights(time)
    weights = skinning.GetBlendShapeMapper().Remap(weights)
    sub_weights, indices, sub_indices = query.ComputeSubShapeWeights(weights)
    points = UsdGeom.Mesh(face).GetPointsAttr().Get(time)
    query.ComputeDeformedPoints(
        sub_weights,
        indices,
        sub_indices,
        query.ComputeBlendShapePointIndices(),
        query.ComputeSubShapePointOffsets(),
        points,
    )
    return np.asarray(points)


def test_usd_is_a_format(sphere_anim, rig_anim, norig_conv) -> None:
    assert "usd" in formats_for(sphere_anim) and "usd" in formats_for(rig_anim)
    assert "usd" not in formats_for(random_animation(norig_conv))  # no rig: no mesh
    params = random_animation(conventions.get("flame_params_from_dadhead"))
    assert "usd" not in formats_for(params)


@pytest.mark.parametrize("name", MESH_REGISTRY)
def test_usd_registry(name: str, tmp_path) -> None:
    """Every registered convention with a mesh: a valid stage at the head's rate whose
    samples equal the npz written alongside (vertices, or weights through UsdSkel)."""
    conv = conventions.get(name)
    require_rig(conv)
    anim = random_animation(conv, n_frames=4)
    npz, path = write_outputs({name: anim}, tmp_path, "clip", ["npz", "usd"])
    assert path.name == f"clip_{name}.usd"
    back = load_npz(npz)[name]
    stage = _open(path)
    _check_timing(stage, 4, conv.fps)
    assert _validation_errors(path) == []
    assert stage.GetRootLayer().customLayerData["unitalker:convention"] == name
    if conv.kind == "blendshapes":
        anim_prim = UsdSkel.Animation(stage.GetPrimAtPath("/Head/Skeleton/Anim"))
        weights = anim_prim.GetBlendShapeWeightsAttr()
        assert weights.GetTimeSamples() == [0.0, 1.0, 2.0, 3.0]
        assert list(anim_prim.GetBlendShapesAttr().Get()) == list(conv.channel_names)
        for i in range(4):
            np.testing.assert_allclose(np.asarray(weights.Get(i)), back.data[i], atol=1e-7)
        np.testing.assert_allclose(_skinned_points(stage, 2), back.vertices()[2], atol=1e-5)
    else:
        points = UsdGeom.PointBased(stage.GetPrimAtPath("/Head/Face")).GetPointsAttr()
        assert points.GetTimeSamples() == [0.0, 1.0, 2.0, 3.0]
        frames = back.vertices()
        for i in range(4):
            np.testing.assert_allclose(np.asarray(points.Get(i)), frames[i], atol=1e-7)


def test_usd_rig_blendshapes(rig_anim, rig_conv, tmp_path) -> None:
    (path,) = write_outputs({rig_conv.name: rig_anim}, tmp_path, "clip", "usd")
    stage = _open(path)
    _check_timing(stage, 15, FPS)
    assert _validation_errors(path) == []
    assert stage.GetDefaultPrim().GetPath() == "/Head"
    assert stage.GetPrimAtPath("/Head").IsA(UsdSkel.Root)
    face = stage.GetPrimAtPath("/Head/Face")
    binding = UsdSkel.BindingAPI(face)
    assert list(binding.GetBlendShapesAttr().Get()) == list(RIG_NAMES)
    targets = binding.GetBlendShapeTargetsRel().GetTargets()
    assert len(targets) == len(RIG_NAMES)
    basis = rig_conv.resource("rig_basis")
    jaw = UsdSkel.BlendShape(stage.GetPrimAtPath(targets[0]))
    np.testing.assert_allclose(np.asarray(jaw.GetOffsetsAttr().Get()), basis[0], atol=1e-7)
    mesh = UsdGeom.Mesh(face)
    assert len(mesh.GetFaceVertexCountsAttr().Get()) == len(rig_conv.resource("faces"))
    # UsdSkel's own evaluation reproduces the rig: mean + weights @ basis, frame by frame.
    frames = rig_anim.vertices()
    for t in (0, 7, 14):
        np.testing.assert_allclose(_skinned_points(stage, t), frames[t], atol=1e-5)


def test_usd_vertices_and_audio(sphere_anim, sphere_conv, tmp_path) -> None:
    import soundfile as sf

    audio = np.sin(np.linspace(0, 200, 16000 * 20 // 30)).astype(np.float32) * 0.5
    usd, wav = write_outputs({sphere_conv.name: sphere_anim}, tmp_path, "clip", "usd", audio=audio)
    assert wav.name == "clip_audio.wav" and wav.parent == usd.parent
    back, sr = sf.read(wav, dtype="float32")
    assert sr == 16000 and len(back) == len(audio)
    np.testing.assert_allclose(back, audio, atol=1 / 32767)
    stage = _open(usd)
    _check_timing(stage, 20, FPS)
    assert _validation_errors(usd) == []
    sound = UsdMedia.SpatialAudio(stage.GetPrimAtPath("/Head/Audio"))
    asset = sound.GetFilePathAttr().Get()
    assert asset.path == "clip_audio.wav"  # relative: the folder moves as a whole
    assert asset.resolvedPath and wav.samefile(asset.resolvedPath)
    assert sound.GetAuralModeAttr().Get() == UsdMedia.Tokens.nonSpatial
    assert sound.GetPlaybackModeAttr().Get() == UsdMedia.Tokens.onceFromStart
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Head/Face"))
    assert len(mesh.GetPointsAttr().GetTimeSamples()) == 20
    extent = np.asarray(mesh.GetExtentAttr().Get(5))
    frames = sphere_anim.vertices()
    np.testing.assert_allclose(extent, [frames[5].min(0), frames[5].max(0)], atol=1e-7)


def test_usd_points_without_faces(faceless_conv, tmp_path) -> None:
    anim = random_animation(faceless_conv, 3)
    (path,) = write_outputs({faceless_conv.name: anim}, tmp_path, "p", "usd")
    stage = _open(path)
    prim = stage.GetPrimAtPath("/Head/Face")
    assert prim.IsA(UsdGeom.Points)
    np.testing.assert_allclose(
        np.asarray(UsdGeom.Points(prim).GetPointsAttr().Get(2)), anim.vertices()[2], atol=1e-7
    )


def test_usd_non_integer_fps(sphere_conv, tmp_path) -> None:
    data = random_animation(sphere_conv, 3).data
    anim = Animation(sphere_conv.name, 29.97, data)
    (path,) = write_outputs({sphere_conv.name: anim}, tmp_path, "c", "usd")
    _check_timing(_open(path), 3, 29.97)


def test_usd_missing_package_is_a_clear_error(sphere_anim, tmp_path, monkeypatch) -> None:
    from unitalker.export import usd as usd_module

    monkeypatch.setattr(usd_module, "usd_available", lambda: False)
    with pytest.raises(ExportError, match=r"pip install 'unitalker\[usd\]'"):
        write_outputs({sphere_anim.convention: sphere_anim}, tmp_path, "c", "usd")
    assert list(tmp_path.iterdir()) == []
    # 'all' skips it quietly.
    paths = write_outputs({sphere_anim.convention: sphere_anim}, tmp_path, "c", "all")
    assert not any(p.suffix == ".usd" for p in paths)
    assert get_writer("usd").unavailable() is not None
