"""The rigs: one differentiable ``[N, D] -> [N, V, 3]`` map per kind of convention.

* :class:`VertexRig`: vertex conventions, a reshape (their template is the ``neutral``
  resource, when they ship one);
* :class:`BlendshapeRig`: blendshape weights through a linear rig,
  ``meanshape + weights @ basis``;
* :class:`LBSRig`: FLAME-style linear blend skinning of a parameter vector: linear
  shape / expression offsets, pose correctives (optional), then the joint rotations
  blended per vertex. The FLAME file of D5 and A2F-Synth's two-bone jaw model are both
  one of these.

Every rig is an ``nn.Module`` (losses and metrics run it on the model's device) with a
thin numpy wrapper, :meth:`Rig.numpy`, for exporters, the renderer and the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from unitalker.geometry.rotation import rodrigues


def _np_dtype(dtype: torch.dtype) -> type:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"rigs are float32 or float64, not {dtype}")
    return np.float64 if dtype == torch.float64 else np.float32


def _buf(a: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=_np_dtype(dtype)))


class Rig(nn.Module):
    """``[N, D]`` motion (template included) -> ``[N, V, 3]`` vertices."""

    n_vertices: int
    numpy_chunk: int | None = None
    """Frames per step of :meth:`numpy` (None: all at once), for rigs whose intermediate
    arrays are much larger than their output."""

    def neutral(self) -> np.ndarray | None:
        """``[V, 3]`` float32 rest mesh of the rig, or None when it has none."""
        raise NotImplementedError

    def numpy(self, data: np.ndarray) -> np.ndarray:
        """The rig on numpy data ``[T, D]`` -> ``[T, V, 3]`` float32.

        Runs in the dtype of the rig's buffers (float64 for a rig built with
        ``dtype=torch.float64``), on CPU, without gradients, :attr:`numpy_chunk` frames at
        a time.
        """
        x = np.asarray(data).reshape(len(data), -1)
        dtype = next(iter(self.buffers())).dtype
        step = self.numpy_chunk or max(len(x), 1)
        out = np.empty((len(x), self.n_vertices, 3), np.float32)
        with torch.no_grad():
            for s in range(0, len(x), step):
                chunk = torch.from_numpy(np.ascontiguousarray(x[s : s + step]))
                out[s : s + step] = self(chunk.to(dtype)).numpy()
        return out


class VertexRig(Rig):
    """Vertex conventions: ``[N, V*3] -> [N, V, 3]``.

    Args:
        n_vertices: V.
        neutral: ``[V, 3]`` neutral mesh of the convention (its ``neutral`` resource), or None.
    """

    def __init__(self, n_vertices: int, neutral: np.ndarray | None = None):
        super().__init__()
        self.n_vertices = int(n_vertices)
        self._neutral = None if neutral is None else np.asarray(neutral, np.float32).reshape(-1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, 3)

    def neutral(self) -> np.ndarray | None:
        return self._neutral

    def numpy(self, data: np.ndarray) -> np.ndarray:
        # a view, not a copy: a memory-mapped long result stays on disk
        return np.asanyarray(data, dtype=np.float32).reshape(len(data), -1, 3)


class BlendshapeRig(Rig):
    """Blendshape weights ``[N, C]`` -> vertices ``[N, V, 3]``: ``mean + weights @ basis``.

    Args:
        meanshape: ``[V, 3]`` (or ``[V*3]``) neutral mesh.
        basis: ``[C, V, 3]`` (or ``[C, V*3]``) per-channel vertex offsets.
        dtype: of the buffers (and so of the arithmetic).
    """

    def __init__(
        self, meanshape: np.ndarray, basis: np.ndarray, *, dtype: torch.dtype = torch.float32
    ):
        super().__init__()
        c = basis.shape[0]
        self.register_buffer("mean", _buf(meanshape, dtype).reshape(-1, 3))
        self.register_buffer("basis", _buf(basis, dtype).reshape(c, -1))  # [C, V*3]
        self.n_vertices = int(self.mean.shape[0])
        if self.basis.shape[1] != 3 * self.n_vertices:
            raise ValueError(
                f"rig basis {tuple(basis.shape)} does not fit mean shape {tuple(meanshape.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.to(self.basis.dtype) @ self.basis  # [N, V*3]
        return v.reshape(x.shape[0], -1, 3) + self.mean

    def neutral(self) -> np.ndarray:
        return self.mean.detach().float().cpu().numpy()

    def offsets(self) -> np.ndarray:
        """``[C, V, 3]`` float32 per-channel offsets (the blendshape targets)."""
        return self.basis.detach().float().cpu().numpy().reshape(len(self.basis), -1, 3)


class LBSRig(Rig):
    """FLAME-style linear blend skinning of a parameter vector.

    ``v = template + coeffs @ shapedirs (+ (R_j - I) @ posedirs)``, then each vertex moves
    with the weighted sum of its joints' rest-relative world transforms. Only the jaw joint
    rotates (axis-angle ``x[:, jaw]``); the other joints stay in rest pose, as in the
    original's D5 convention.

    Args:
        template: ``[V, 3]`` rest mesh.
        shapedirs: ``[V, 3, S]`` linear offsets of the coefficients ``x[:, coeffs]``.
        weights: ``[V, J]`` skinning weights.
        parents: ``[J]`` parent joint of each joint, ``-1`` for the root.
        coeffs: ``(start, stop)`` of the ``S`` coefficients in the vector.
        jaw: ``(start, stop)`` of the jaw axis-angle in the vector.
        jaw_joint: index of the jaw joint.
        joints: ``[J, 3]`` fixed joint positions, or None to regress them.
        j_regressor: ``[J, V]`` joint regressor (FLAME), used when ``joints`` is None.
        posedirs: ``[V, 3, 9 (J - 1)]`` pose correctives, or None.
        face_indices: vertices to return (None: all).
        dtype: of the buffers (and so of the arithmetic).
    """

    numpy_chunk = 256  # the blended transforms are [N, V, 3, 4]

    def __init__(
        self,
        template: np.ndarray,
        shapedirs: np.ndarray,
        weights: np.ndarray,
        parents: Sequence[int],
        *,
        coeffs: tuple[int, int],
        jaw: tuple[int, int],
        jaw_joint: int,
        joints: np.ndarray | None = None,
        j_regressor: np.ndarray | None = None,
        posedirs: np.ndarray | None = None,
        face_indices: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if (joints is None) == (j_regressor is None):
            raise ValueError("LBSRig: give exactly one of joints and j_regressor")
        self.register_buffer("v_template", _buf(template, dtype).reshape(-1, 3))
        self.register_buffer("shapedirs", _buf(shapedirs, dtype))  # [V, 3, S]
        self.register_buffer("weights", _buf(weights, dtype))  # [V, J]
        self.register_buffer(
            "joints", None if joints is None else _buf(joints, dtype).reshape(-1, 3)
        )
        self.register_buffer(
            "J_regressor", None if j_regressor is None else _buf(j_regressor, dtype)
        )
        self.register_buffer("posedirs", None if posedirs is None else _buf(posedirs, dtype))
        idx = None if face_indices is None else torch.as_tensor(np.asarray(face_indices, np.int64))
        self.register_buffer("face_indices", idx)
        self.parents = [int(p) for p in parents]
        self.n_joints = len(self.parents)
        self.coeffs, self.jaw, self.jaw_joint = tuple(coeffs), tuple(jaw), int(jaw_joint)
        if self.coeffs[1] - self.coeffs[0] != self.n_coeffs or self.jaw[1] - self.jaw[0] != 3:
            raise ValueError(
                f"LBSRig: coefficient slice {self.coeffs} for {self.n_coeffs} shapedirs, "
                f"jaw slice {self.jaw} (3 wide)"
            )
        n_v = self.v_template.shape[0]
        self.n_vertices = int(n_v if idx is None else len(idx))

    @property
    def n_coeffs(self) -> int:
        return int(self.shapedirs.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, D]`` -> ``[N, V, 3]``."""
        dt = self.v_template.dtype
        x = x.to(dt)
        n = x.shape[0]
        coeffs, jaw = x[:, self.coeffs[0] : self.coeffs[1]], x[:, self.jaw[0] : self.jaw[1]]
        v_shaped = self.v_template[None] + torch.einsum("nk,vck->nvc", coeffs, self.shapedirs)
        if self.joints is not None:
            joints = self.joints[None].expand(n, -1, -1)  # [N, J, 3]
        else:
            joints = torch.einsum("jv,nvc->njc", self.J_regressor, v_shaped)
        pose = torch.zeros(n, self.n_joints, 3, dtype=dt, device=x.device)
        pose[:, self.jaw_joint] = jaw
        rot = rodrigues(pose)  # [N, J, 3, 3]
        v_posed = v_shaped
        if self.posedirs is not None:
            eye = torch.eye(3, dtype=dt, device=x.device)
            pose_feat = (rot[:, 1:] - eye).reshape(n, -1)  # [N, 9 (J-1)]
            v_posed = v_shaped + torch.einsum("np,vcp->nvc", pose_feat, self.posedirs)
        # world transforms along the kinematic chain
        transforms: list[torch.Tensor] = []
        for j in range(self.n_joints):
            parent = self.parents[j]
            t = joints[:, j] - (joints[:, parent] if parent >= 0 else 0)
            local = _homogeneous(rot[:, j], t)
            transforms.append(local if parent < 0 else transforms[parent] @ local)
        g = torch.stack(transforms, 1)  # [N, J, 4, 4]
        # remove the rest pose: G_j <- G_j - G_j @ [J_j, 0]
        rest = torch.einsum("njab,njb->nja", g[..., :3, :3], joints)
        g = torch.cat([g[..., :3, :3], (g[..., :3, 3] - rest)[..., None]], -1)  # [N, J, 3, 4]
        blend = torch.einsum("vj,njab->nvab", self.weights, g)  # [N, V, 3, 4]
        out = torch.einsum("nvab,nvb->nva", blend[..., :3], v_posed) + blend[..., 3]
        if self.face_indices is not None:
            out = out[:, self.face_indices]
        return out

    def neutral(self) -> np.ndarray:
        v = self.v_template if self.face_indices is None else self.v_template[self.face_indices]
        return v.detach().float().cpu().numpy()

    @classmethod
    def from_flame(
        cls,
        model: dict[str, np.ndarray],
        *,
        jaw: tuple[int, int],
        jaw_joint: int = 2,
        face_indices: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> LBSRig:
        """A FLAME model (:func:`unitalker.geometry.flame.load_flame_model`) whose betas
        are the first ``S`` channels of the vector and whose jaw is ``x[:, jaw]``."""
        parents = np.asarray(model["kintree_table"])[0].astype(np.int64)
        parents[0] = -1
        s = int(np.asarray(model["shapedirs"]).shape[-1])
        return cls(
            model["v_template"],
            model["shapedirs"],
            model["weights"],
            parents,
            coeffs=(0, s),
            jaw=jaw,
            jaw_joint=jaw_joint,
            j_regressor=model["J_regressor"],
            posedirs=model["posedirs"],
            face_indices=face_indices,
            dtype=dtype,
        )

    @classmethod
    def jaw_model(
        cls,
        template: np.ndarray,
        exprdirs: np.ndarray,
        jaw_weights: np.ndarray,
        jaw_pivot: np.ndarray,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> LBSRig:
        """A two-bone model (head, jaw about ``jaw_pivot``) with a linear expression basis:
        ``x[:, 0:3]`` jaw axis-angle, ``x[:, 3:3+E]`` expression coefficients.

        Args:
            template: ``[V, 3]``; exprdirs: ``[E, V, 3]``; jaw_weights: ``[V]`` skinning
            weight of the jaw (the head has ``1 - w``); jaw_pivot: ``[3]``.
        """
        f = _np_dtype(dtype)
        e = exprdirs.shape[0]
        w = np.asarray(jaw_weights, f).reshape(-1)  # 1 - w in the rig's precision
        dirs = np.asarray(exprdirs, f).reshape(e, -1, 3).transpose(1, 2, 0)  # [V, 3, E]
        joints = np.stack([np.zeros(3, f), np.asarray(jaw_pivot, f).reshape(3)])
        weights = np.stack([1 - w, w], 1)  # [V, 2]: head, jaw
        return cls(
            template,
            dirs,
            weights,
            (-1, 0),
            coeffs=(3, 3 + e),
            jaw=(0, 3),
            jaw_joint=1,
            joints=joints,
            dtype=dtype,
        )


def _homogeneous(r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    bottom = torch.zeros(r.shape[0], 1, 4, dtype=r.dtype, device=r.device)
    bottom[..., 3] = 1
    return torch.cat([torch.cat([r, t[..., None]], -1), bottom], 1)
