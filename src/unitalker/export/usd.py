"""``usd``: a USD stage per head, for Omniverse, Houdini, Maya, Blender and usdview.

Needs the ``usd`` extra (``pip install 'unitalker[usd]'``, the ``usd-core`` wheels).

- Vertex heads, and parameter heads with a vertex function (rendered through it as the
  glb exporter does): a ``UsdGeom.Mesh`` (``UsdGeom.Points`` without faces) at
  ``/Head/Face`` whose ``points`` and ``extent`` are time-sampled, one sample per frame.
- Blendshape heads with a rig: UsdSkel. ``/Head`` is a ``SkelRoot`` holding a one-joint
  ``Skeleton`` (``/Head/Skeleton``), its ``SkelAnimation`` (``/Head/Skeleton/Anim``) with
  ``blendShapes`` (the channel names) and time-sampled ``blendShapeWeights``, and the
  mesh ``/Head/Face`` (the rig's mean shape) bound to the skeleton with one
  ``BlendShape`` prim per channel (``offsets`` = the rig's basis row, dense).

The stage runs at the head's frame rate: ``timeCodesPerSecond = framesPerSecond = fps``,
frame ``i`` is time code ``i``, ``startTimeCode = 0``, ``endTimeCode = T - 1``. With
audio, a ``UsdMedia.SpatialAudio`` prim ``/Head/Audio`` (non-spatial, played once from
time code 0) references ``<stem>_audio.wav`` written next to the stage by a relative path,
so the folder can move as a whole. Units: metres (``metersPerUnit = 1``), Y up, like the
conventions' meshes. The file is USD's binary crate format (``.usd``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.export.base import ExportError, Writer, register_writer

log = logging.getLogger(__name__)

INSTALL_HINT = "the usd format needs usd-core: pip install 'unitalker[usd]'"


def usd_available() -> bool:
    """Whether ``pxr`` (usd-core) can be imported."""
    try:
        import pxr.Usd  # noqa: F401
    except ImportError:
        return False
    return True


def _pxr():
    try:
        from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdMedia, UsdSkel, Vt
    except ImportError as e:
        raise ExportError(f"{INSTALL_HINT} ({e})") from e
    return Gf, Sdf, Tf, Usd, UsdGeom, UsdMedia, UsdSkel, Vt


def build_stage(animation: Animation, path: Path, *, audio_file: str | None = None) -> None:
    """Write one head's stage to ``path`` (see the module docstring).

    Args:
        animation: the head; its convention must have a mesh (``conv.has_mesh``).
        path: the ``.usd`` file to create.
        audio_file: a path relative to the stage's folder of the clip's audio, or None.
    """
    Gf, Sdf, Tf, Usd, UsdGeom, UsdMedia, UsdSkel, Vt = _pxr()
    conv = animation.conv
    n = animation.n_frames
    fps = float(animation.fps)
    stage = Usd.Stage.CreateNew(str(path))
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(max(n - 1, 0))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetMetadata(
        "customLayerData",
        {
            "unitalker:convention": conv.name,
            "unitalker:fps": fps,
            "unitalker:identity": animation.identity,
            "unitalker:frames": n,
        },
    )
    faces = animation.faces()
    rigged = conv.kind == "blendshapes" and conv.has_mesh
    if rigged:
        root = UsdSkel.Root.Define(stage, "/Head")
    else:
        root = UsdGeom.Xform.Define(stage, "/Head")
    stage.SetDefaultPrim(root.GetPrim())
    if rigged:
        _skel_head(stage, animation, faces)
    else:
        frames = animation.vertices()
        if frames is None:
            raise ExportError(f"usd needs a mesh; {conv.name!r} has none")
        geom = _geometry(stage, "/Head/Face", frames[0] if n else None, faces)
        points = geom.GetPointsAttr()
        extent = geom.GetExtentAttr()
        for i in range(n):
            points.Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(frames[i])), Usd.TimeCode(i))
            extent.Set(_extent(Vt, frames[i]), Usd.TimeCode(i))
    if audio_file is not None:
        sound = UsdMedia.SpatialAudio.Define(stage, "/Head/Audio")
        sound.CreateFilePathAttr(Sdf.AssetPath(audio_file))
        sound.CreateAuralModeAttr(UsdMedia.Tokens.nonSpatial)
        # startTime keeps its fallback, 0 (authoring a timecode value would force crate
        # 0.9, which older USD builds in DCC tools cannot read).
        sound.CreatePlaybackModeAttr(UsdMedia.Tokens.onceFromStart)
    stage.GetRootLayer().Save()


def _extent(Vt, pts: np.ndarray):
    return Vt.Vec3fArray.FromNumpy(np.stack([pts.min(axis=0), pts.max(axis=0)]).astype(np.float32))


def _geometry(stage, prim_path: str, points: np.ndarray | None, faces: np.ndarray | None):
    _, _, _, _, UsdGeom, _, _, Vt = _pxr()
    if faces is None:
        geom = UsdGeom.Points.Define(stage, prim_path)
    else:
        geom = UsdGeom.Mesh.Define(stage, prim_path)
        faces = np.asarray(faces, dtype=np.int32)
        geom.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
        geom.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
        geom.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        geom.CreateDoubleSidedAttr(True)
        # Our meshes wind counter-clockwise seen from outside, as glTF and OpenGL do.
        geom.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    geom.CreatePointsAttr()
    geom.CreateExtentAttr()
    if points is not None:
        # The default (untimed) value is the first frame: what a reader sees without time.
        geom.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(points)))
        geom.GetExtentAttr().Set(_extent(Vt, points))
    geom.CreateDisplayColorAttr([(0.80, 0.62, 0.52)])
    return geom


def _skel_head(stage, animation: Animation, faces: np.ndarray | None) -> None:
    Gf, Sdf, Tf, Usd, UsdGeom, _, UsdSkel, Vt = _pxr()
    conv = animation.conv
    from unitalker import geometry

    rig = geometry.rig_for(conv)  # the blend shapes are the rig itself
    mean, basis = rig.neutral(), rig.offsets()  # [V, 3], [C, V, 3]
    if basis.shape[1:] != mean.shape or basis.shape[0] != conv.dim:
        raise ExportError(
            f"{conv.name}: rig basis {basis.shape} does not match mean shape {mean.shape} "
            f"and {conv.dim} channels"
        )
    names = list(conv.channel_names or [f"channel_{i:02d}" for i in range(conv.dim)])
    prim_names = _unique_identifiers(Tf, names)

    # One joint at the origin: UsdSkel binds blend shapes through a skeleton, and several
    # importers ignore a skeleton without joints.
    skel = UsdSkel.Skeleton.Define(stage, "/Head/Skeleton")
    skel.CreateJointsAttr(["head"])
    skel.CreateJointNamesAttr(["head"])
    identity = Gf.Matrix4d(1.0)
    skel.CreateBindTransformsAttr(Vt.Matrix4dArray([identity]))
    skel.CreateRestTransformsAttr(Vt.Matrix4dArray([identity]))

    anim = UsdSkel.Animation.Define(stage, "/Head/Skeleton/Anim")
    anim.CreateJointsAttr(["head"])
    anim.CreateTranslationsAttr(Vt.Vec3fArray([Gf.Vec3f(0, 0, 0)]))
    anim.CreateRotationsAttr(Vt.QuatfArray([Gf.Quatf(1, 0, 0, 0)]))
    anim.CreateScalesAttr(Vt.Vec3hArray([Gf.Vec3h(1, 1, 1)]))
    anim.CreateBlendShapesAttr(names)
    weights = anim.CreateBlendShapeWeightsAttr()
    data = np.ascontiguousarray(animation.data, dtype=np.float32)
    for i in range(animation.n_frames):
        weights.Set(Vt.FloatArray.FromNumpy(data[i]), Usd.TimeCode(i))

    binding = UsdSkel.BindingAPI.Apply(skel.GetPrim())
    binding.CreateAnimationSourceRel().SetTargets([anim.GetPath()])

    face = _geometry(stage, "/Head/Face", mean, faces)
    # Extent over the whole clip, so culling never clips the moving face.
    if animation.n_frames:
        from unitalker import geometry

        verts = geometry.vertices(conv, data)
        lo = np.minimum(verts.min(axis=(0, 1)), mean.min(axis=0))
        hi = np.maximum(verts.max(axis=(0, 1)), mean.max(axis=0))
        face.GetExtentAttr().Set(Vt.Vec3fArray.FromNumpy(np.stack([lo, hi]).astype(np.float32)))
    fb = UsdSkel.BindingAPI.Apply(face.GetPrim())
    fb.CreateSkeletonRel().SetTargets([skel.GetPath()])
    fb.CreateBlendShapesAttr(names)
    fb.CreateGeomBindTransformAttr(identity)
    # Every point rigidly on the one joint (constant primvars of element size 1).
    fb.CreateJointIndicesPrimvar(constant=True, elementSize=1).Set(Vt.IntArray([0]))
    fb.CreateJointWeightsPrimvar(constant=True, elementSize=1).Set(Vt.FloatArray([1.0]))
    targets = []
    for prim_name, offsets in zip(prim_names, basis, strict=True):
        shape = UsdSkel.BlendShape.Define(stage, face.GetPath().AppendChild(prim_name))
        shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(offsets)))
        targets.append(shape.GetPath())
    fb.CreateBlendShapeTargetsRel().SetTargets(targets)


def _unique_identifiers(Tf, names: list[str]) -> list[str]:
    # Prim names must be identifiers; channel names stay as they are in the blendShapes tokens.
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = Tf.MakeValidIdentifier(name)
        cand, k = base, 1
        while cand in seen:
            cand, k = f"{base}_{k}", k + 1
        seen.add(cand)
        out.append(cand)
    return out


def audio_name(stem: str) -> str:
    """File name of the audio written next to a clip's stages (one for all heads)."""
    return f"{stem}_audio.wav"


@register_writer
class UsdWriter(Writer):
    name = "usd"
    extension = "usd"
    description = "USD stage: time-sampled mesh points, or UsdSkel blend shapes; audio referenced"
    writes_audio = True

    def fits(self, animation: Animation) -> bool:
        return animation.conv.has_mesh

    def why_not(self, animation: Animation) -> str:
        return f"usd needs a mesh; {animation.convention!r} is {animation.conv.kind} without a rig"

    def unavailable(self) -> str | None:
        return None if usd_available() else INSTALL_HINT

    def write_head(
        self, animation: Animation, path: Path, *, audio_file: str | None = None
    ) -> None:
        build_stage(animation, path, audio_file=audio_file)
