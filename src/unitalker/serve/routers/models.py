"""What the loaded model offers and how to draw it.

``GET /v1/models`` (heads, identities, limits), ``GET /v1/conventions`` (the registry) and
``GET /v1/mesh/{convention}`` (:func:`mesh_payload`: the neutral mesh, the rig basis of a
blendshape convention and the render-only dressing of synth heads).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from unitalker import conventions, geometry
from unitalker.audio import SAMPLE_RATE
from unitalker.serve import protocol
from unitalker.serve.errors import ApiError
from unitalker.serve.protocol import json_floats
from unitalker.serve.settings import FORMATS
from unitalker.serve.state import state_of

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

router = APIRouter()


@router.get("/v1/models", summary="The loaded model: heads, identities, limits")
async def models(request: Request) -> dict[str, Any]:
    from unitalker.models.checkpoint import available_models

    st = state_of(request)
    model, settings = st.model, st.settings

    info = {
        "name": settings.model_name,
        "heads": [head_info(model, h) for h in model.heads],
        "identities": list(model.config.identities),
        "default_identity": "pivot" if "pivot" in model.config.identities else None,
    }
    if hasattr(model, "describe"):
        d = model.describe()
        info |= {k: d[k] for k in ("encoder", "decoder", "parameters") if k in d}
    return {
        "models": [info],
        "bundled": available_models(),
        "formats": list(FORMATS),
        "limits": {
            "max_upload_mb": settings.max_upload_mb,
            "max_seconds": settings.max_seconds,
            "max_concurrency": settings.max_concurrency,
            "queue_limit": settings.queue_limit,
            "max_streams": settings.max_streams,
            "upload_timeout_seconds": settings.upload_timeout_seconds,
            "decode_timeout_seconds": settings.decode_timeout_seconds,
            "stream_send_timeout_seconds": settings.stream_send_timeout_seconds,
        },
        "sample_rate": SAMPLE_RATE,
    }


@router.get("/v1/conventions", summary="Every registered annotation convention")
async def list_conventions(request: Request) -> dict[str, Any]:
    model = state_of(request).model
    out = []
    for c in conventions.all_conventions():
        d = c.to_dict()
        d["resources"] = sorted(d["resources"])  # keys only: no server paths
        d["in_model"] = c.name in model.heads
        d["has_mesh"] = mesh_available(model, c)
        out.append(d)
    return {"conventions": out}


@router.get(
    "/v1/mesh/{convention}",
    summary="Neutral mesh (+ rig basis for blendshapes) to draw a convention",
    responses={404: {"description": "unknown convention or no mesh"}},
)
async def mesh(
    request: Request,
    convention: str,
    format: str = Query("json", pattern="^(json|bin)$", description="json or bin"),
    display: bool = Query(
        True, description="include the render-only dressing of synth heads (display_*)"
    ),
) -> Response:
    model = state_of(request).model
    arrays, meta = await asyncio.to_thread(mesh_payload, model, convention, display)
    if format == "bin":
        return Response(protocol.pack_arrays(arrays, meta), media_type=protocol.ARRAYS_MEDIA_TYPE)
    body = dict(meta)
    body["neutral"] = json_floats(arrays["neutral"])
    body["faces"] = arrays["faces"].tolist() if "faces" in arrays else None
    if "basis" in arrays:
        body["basis"] = json_floats(arrays["basis"])
    for k, v in arrays.items():
        if k.startswith("display_"):
            body[k] = v.tolist() if np.issubdtype(v.dtype, np.integer) else json_floats(v)
    return JSONResponse(body)


def head_info(model: TalkerModel, h: str) -> dict[str, Any]:
    c = conventions.get(h)
    return {
        "name": h,
        "kind": c.kind,
        "dim": c.dim,
        "fps": c.fps,
        "channels": list(c.channel_names) if c.channel_names else None,
        "has_mesh": mesh_available(model, c),
        "description": c.description,
    }


def mesh_available(model: TalkerModel, c: conventions.Convention) -> bool:
    if c.kind == "vertices":
        return c.has_resource("neutral") or c.name in model.heads
    return c.kind == "blendshapes" and c.has_mesh


def mesh_payload(
    model: TalkerModel, name: str, display: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays the viewer needs to draw a convention: see ``GET /v1/mesh/{convention}``.

    With ``display`` and a convention on a synth head, also the render-only dressing
    (:mod:`unitalker.synth.dressing`): ``display_rest [D, 3]``, ``display_faces``,
    ``display_colors [D, 3]``, ``display_blink [D, 3]`` and the sparse map
    ``display_indptr / display_indices / display_data`` (CSR ``[D, V]``) and the smoothing
    ``display_smooth_*`` (CSR ``[V, V]``), to draw
    ``display_rest + A @ S @ (vertices - neutral) + blink * display_blink``.
    """
    try:
        c = conventions.get(name)
    except KeyError as e:
        raise ApiError(404, "unknown_convention", e.args[0]) from None
    faces = c.resource("faces") if c.has_resource("faces") else None
    arrays: dict[str, np.ndarray] = {}
    if c.kind == "vertices":
        neutral = geometry.rig_for(c).neutral()
        if neutral is None and name in model.heads:
            neutral = model.template(name).detach().float().cpu().numpy()
        if neutral is None:
            raise ApiError(404, "no_mesh", f"convention {name!r} has no neutral mesh")
        arrays["neutral"] = np.asarray(neutral, np.float32).reshape(-1, 3)
    elif c.kind == "blendshapes" and c.has_mesh:  # the viewer evaluates the linear rig
        rig = geometry.rig_for(c)
        arrays["neutral"], arrays["basis"] = rig.neutral(), rig.offsets()
    else:
        raise ApiError(404, "no_mesh", f"convention {name!r} ({c.kind}) has no mesh to draw")
    if faces is not None:
        arrays["faces"] = np.asarray(faces, np.int64).reshape(-1, 3)
    meta = {"convention": name, "kind": c.kind, "n_vertices": int(arrays["neutral"].shape[0])}
    meta["has_faces"] = faces is not None
    if display:
        from unitalker.synth.dressing import dressing_for

        d = dressing_for(name)
        if d is not None and d.neutral.shape == arrays["neutral"].shape:
            a = d.matrix
            arrays |= {
                "display_rest": d.rest,
                "display_faces": d.faces.astype(np.int64),
                "display_colors": d.colors,
                "display_blink": d.blink,
                "display_indptr": a.indptr.astype(np.int64),
                "display_indices": a.indices.astype(np.int64),
                "display_data": a.data.astype(np.float32),
            }
            if d.smooth is not None:
                sm = d.smooth
                arrays |= {
                    "display_smooth_indptr": sm.indptr.astype(np.int64),
                    "display_smooth_indices": sm.indices.astype(np.int64),
                    "display_smooth_data": sm.data.astype(np.float32),
                }
            meta["display"] = (
                "render-only dressing: display_rest + A @ S @ (vertices - neutral) "
                "+ blink * display_blink, A the CSR display_indptr/indices/data [D, V], "
                "S the CSR display_smooth_indptr/indices/data [V, V] (identity if absent)"
            )
    meta["evaluate"] = "neutral + weights @ basis" if "basis" in arrays else "frames are vertices"
    return arrays, meta
