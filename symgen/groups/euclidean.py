"""Rotations SO(3), translations T(3) and rigid motions SE(3) acting on positions."""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from symgen.groups.base import Group
from symgen.shapes import NodeMask, Rotations
from symgen.state import GeometricGraph

__all__ = [
    "Rotation",
    "Translation",
    "RigidMotion",
    "SO3",
    "Translations",
    "SE3",
    "random_rotation",
    "axis_angle_to_matrix",
    "quaternion_to_matrix",
    "rotation_angle",
]


# ---------------------------------------------------------------------------- helpers
def quaternion_to_matrix(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrix of a (not necessarily normalized) quaternion ``q = (w, x, y, z)``.

    ``R = I + 2w[v]_x + 2[v]_x^2`` for the unit quaternion ``(w, v)``.
    """
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(q.shape[:-1] + (3, 3))


def axis_angle_to_matrix(
    axis: Float[Tensor, "*batch 3"], angle: Float[Tensor, "*batch"]
) -> Float[Tensor, "*batch 3 3"]:
    """Rotation by ``angle`` (radians, right-handed) about ``axis`` (Rodrigues' formula)."""
    axis = axis / axis.norm(dim=-1, keepdim=True)
    half = angle / 2
    q = torch.cat([torch.cos(half)[..., None], torch.sin(half)[..., None] * axis], dim=-1)
    return quaternion_to_matrix(q)


def random_rotation(
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Rotations:
    """Haar-random rotations: normalized standard Gaussian quaternions.

    ``R = quaternion_to_matrix(q / |q|)`` with ``q ~ N(0, I_4)``. A standard Gaussian in R^4 is
    rotation invariant, so its direction is uniform on S^3, and the double cover S^3 -> SO(3)
    pushes the uniform measure to the Haar measure.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> R = random_rotation(1000, generator=g, dtype=torch.float64)
        >>> eye = torch.eye(3, dtype=torch.float64).expand(1000, 3, 3)
        >>> torch.allclose(R @ R.transpose(1, 2), eye), bool((torch.linalg.det(R) > 0).all())
        (True, True)
        >>> float(R.mean(0).abs().max()) < 0.1  # Haar: E[R] = 0
        True
    """
    q = torch.randn(batch_size, 4, generator=generator, dtype=torch.float64, device=device)
    return quaternion_to_matrix(q).to(dtype)


def rotation_angle(R: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch"]:
    """Rotation angle θ in [0, π] from ``trace(R) = 1 + 2 cos θ``."""
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1.0, 1.0))


def _where_real(mask: NodeMask, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(mask[..., None], new, old)


def _fixed_rotations(b: int, dtype: torch.dtype, device: torch.device) -> list[Tensor]:
    specs = [((0.0, 0.0, 1.0), math.pi / 2), ((1.0, 0.0, 0.0), math.pi), ((1.0, 2.0, 3.0), 2.1)]
    out = []
    for axis, angle in specs:
        a = torch.tensor(axis, dtype=torch.float64, device=device)
        R = axis_angle_to_matrix(a, torch.tensor(angle, dtype=torch.float64, device=device))
        out.append(R.to(dtype).expand(b, 3, 3).clone())
    return out


def _known(group: Group, tensors: Mapping[str, Tensor], names: tuple[str, ...]) -> None:
    unknown = sorted(set(tensors) - set(names))
    if unknown:
        raise ValueError(
            f"{group!r} has no element component(s) {unknown}; its components are {list(names)}"
        )


def _check_batch(name: str, t: Tensor, x: GeometricGraph) -> None:
    if t.shape[0] != x.batch_size:
        raise ValueError(
            f"{name} batch size {t.shape[0]} does not match the graphs' {x.batch_size}"
        )


# ---------------------------------------------------------------------------- elements
@dataclass(frozen=True)
class Rotation:
    """A batch of rotation matrices, acting on row vectors as ``pos @ R.T``."""

    matrix: Rotations


@dataclass(frozen=True)
class Translation:
    """A batch of translation vectors, acting as ``pos + t``."""

    vector: Float[Tensor, "b 3"]


@dataclass(frozen=True)
class RigidMotion:
    """A batch of rigid motions ``pos -> pos @ R.T + t`` (rotation first, then translation)."""

    rotation: Rotations
    translation: Float[Tensor, "b 3"]


# ---------------------------------------------------------------------------- groups
class SO3(Group[Rotation]):
    """Rotations of 3D space, acting on the positions of real nodes.

    ``act(R, x).pos = x.pos @ R.T`` on real nodes; ``compose(g, h) = R_g R_h``;
    ``inverse(R) = R.T``. ``sample`` draws from the Haar measure (normalized Gaussian
    quaternions), whose rotation angle θ has density ``(1 - cos θ) / π`` on [0, π].

    Examples:
        >>> x = GeometricGraph(torch.tensor([[[1., 0., 0.]]]), torch.zeros(1, 1, 1),
        ...                    torch.ones(1, 1, dtype=bool))
        >>> R = axis_angle_to_matrix(torch.tensor([0., 0., 1.]), torch.tensor(math.pi / 2))
        >>> (SO3().act(Rotation(R[None]), x).pos.round(decimals=6) + 0.0).tolist()
        [[[0.0, 1.0, 0.0]]]
    """

    def identity(self, x: GeometricGraph) -> Rotation:
        eye = torch.eye(3, dtype=x.dtype, device=x.device)
        return Rotation(eye.expand(x.batch_size, 3, 3).clone())

    def sample(self, x: GeometricGraph, *, generator: torch.Generator | None = None) -> Rotation:
        return Rotation(
            random_rotation(x.batch_size, generator=generator, dtype=x.dtype, device=x.device)
        )

    def compose(self, g: Rotation, h: Rotation) -> Rotation:
        return Rotation(g.matrix @ h.matrix)

    def inverse(self, g: Rotation) -> Rotation:
        return Rotation(g.matrix.transpose(-1, -2))

    def act(self, g: Rotation, x: GeometricGraph) -> GeometricGraph:
        _check_batch("rotation", g.matrix, x)
        R = g.matrix.to(x.dtype)
        return x.replace(pos=_where_real(x.mask, x.pos @ R.transpose(-1, -2), x.pos))

    def allclose(self, g: Rotation, h: Rotation, *, atol: float = 1e-5) -> bool:
        return bool(torch.allclose(g.matrix, h.matrix.to(g.matrix.dtype), atol=atol, rtol=0))

    def testing_elements(self, x: GeometricGraph) -> list[Rotation]:
        return [Rotation(R) for R in _fixed_rotations(x.batch_size, x.dtype, x.device)]

    def element_to_tensors(self, g: Rotation) -> dict[str, Tensor]:
        return {"rotation": g.matrix}

    def element_from_tensors(self, tensors: Mapping[str, Tensor], x: GeometricGraph) -> Rotation:
        _known(self, tensors, ("rotation",))
        return Rotation(tensors["rotation"]) if "rotation" in tensors else self.identity(x)


class Translations(Group[Translation]):
    """Translations T(3) of the real nodes: ``act(t, x).pos = x.pos + t``.

    T(3) is not compact and has no Haar *probability* measure. ``sample`` therefore draws
    ``t ~ N(0, scale² I)``, a convenient proposal for tests, not an invariant measure. Generative
    models in symgen handle translations by centring (zero centroid) instead of sampling them.

    Examples:
        >>> x = GeometricGraph(torch.zeros(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.tensor([[True, False]]))
        >>> Translations().act(Translation(torch.ones(1, 3)), x).pos[0].tolist()
        [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)

    def identity(self, x: GeometricGraph) -> Translation:
        return Translation(torch.zeros(x.batch_size, 3, dtype=x.dtype, device=x.device))

    def sample(self, x: GeometricGraph, *, generator: torch.Generator | None = None) -> Translation:
        t = torch.randn(x.batch_size, 3, generator=generator, dtype=torch.float64, device=x.device)
        return Translation((self.scale * t).to(x.dtype))

    def compose(self, g: Translation, h: Translation) -> Translation:
        return Translation(g.vector + h.vector)

    def inverse(self, g: Translation) -> Translation:
        return Translation(-g.vector)

    def act(self, g: Translation, x: GeometricGraph) -> GeometricGraph:
        _check_batch("translation", g.vector, x)
        return x.replace(pos=_where_real(x.mask, x.pos + g.vector.to(x.dtype)[:, None, :], x.pos))

    def allclose(self, g: Translation, h: Translation, *, atol: float = 1e-5) -> bool:
        return bool(torch.allclose(g.vector, h.vector.to(g.vector.dtype), atol=atol, rtol=0))

    def testing_elements(self, x: GeometricGraph) -> list[Translation]:
        vectors = [(1.0, -2.0, 0.5), (0.0, 0.0, 3.0)]
        return [
            Translation(
                torch.tensor(v, dtype=x.dtype, device=x.device).expand(x.batch_size, 3).clone()
            )
            for v in vectors
        ]

    def act_on_vectors(self, g: Translation, x: GeometricGraph) -> GeometricGraph:
        return x

    def element_to_tensors(self, g: Translation) -> dict[str, Tensor]:
        return {"translation": g.vector}

    def element_from_tensors(self, tensors: Mapping[str, Tensor], x: GeometricGraph) -> Translation:
        _known(self, tensors, ("translation",))
        if "translation" in tensors:
            return Translation(tensors["translation"])
        return self.identity(x)

    def __repr__(self) -> str:
        return f"Translations(scale={self.scale})"


class SE3(Group[RigidMotion]):
    """Rigid motions ``pos -> pos @ R.T + t`` of the real nodes.

    ``compose(g, h) = (R_g R_h, t_h R_g^T + t_g)`` (row vectors), ``inverse(g) = (R^T, -t R)``.

    ``sample`` draws a Haar-random rotation and a translation ``t ~ N(0, translation_scale² I)``.
    SE(3) has no Haar probability measure on translations, so the default
    ``translation_scale = 0`` gives pure rotations: "symmetrize at generation" in symgen means a
    random rotation (and permutation) with the centroid kept at the origin.

    Examples:
        >>> mask = torch.ones(2, 3, dtype=bool)
        >>> x = GeometricGraph(torch.randn(2, 3, 3), torch.zeros(2, 3, 1), mask)
        >>> G = SE3(translation_scale=1.0)
        >>> g = G.sample(x, generator=torch.Generator().manual_seed(0))
        >>> torch.testing.assert_close(G.act(G.inverse(g), G.act(g, x)).pos, x.pos)
    """

    def __init__(self, translation_scale: float = 0.0) -> None:
        self.translation_scale = float(translation_scale)

    def identity(self, x: GeometricGraph) -> RigidMotion:
        eye = torch.eye(3, dtype=x.dtype, device=x.device).expand(x.batch_size, 3, 3).clone()
        return RigidMotion(eye, torch.zeros(x.batch_size, 3, dtype=x.dtype, device=x.device))

    def sample(self, x: GeometricGraph, *, generator: torch.Generator | None = None) -> RigidMotion:
        R = random_rotation(x.batch_size, generator=generator, dtype=x.dtype, device=x.device)
        t = torch.zeros(x.batch_size, 3, dtype=x.dtype, device=x.device)
        if self.translation_scale > 0:
            noise = torch.randn(
                x.batch_size, 3, generator=generator, dtype=torch.float64, device=x.device
            )
            t = (self.translation_scale * noise).to(x.dtype)
        return RigidMotion(R, t)

    def compose(self, g: RigidMotion, h: RigidMotion) -> RigidMotion:
        R = g.rotation @ h.rotation
        t = (h.translation[:, None, :] @ g.rotation.transpose(-1, -2))[:, 0] + g.translation
        return RigidMotion(R, t)

    def inverse(self, g: RigidMotion) -> RigidMotion:
        Rt = g.rotation.transpose(-1, -2)
        return RigidMotion(Rt, -(g.translation[:, None, :] @ g.rotation)[:, 0])

    def act(self, g: RigidMotion, x: GeometricGraph) -> GeometricGraph:
        _check_batch("rigid motion", g.rotation, x)
        R, t = g.rotation.to(x.dtype), g.translation.to(x.dtype)
        moved = x.pos @ R.transpose(-1, -2) + t[:, None, :]
        return x.replace(pos=_where_real(x.mask, moved, x.pos))

    def allclose(self, g: RigidMotion, h: RigidMotion, *, atol: float = 1e-5) -> bool:
        same_R = torch.allclose(g.rotation, h.rotation.to(g.rotation.dtype), atol=atol, rtol=0)
        same_t = torch.allclose(
            g.translation, h.translation.to(g.translation.dtype), atol=atol, rtol=0
        )
        return bool(same_R and same_t)

    def testing_elements(self, x: GeometricGraph) -> list[RigidMotion]:
        rotations = _fixed_rotations(x.batch_size, x.dtype, x.device)
        shifts = [(0.0, 0.0, 0.0), (1.0, -2.0, 0.5), (-0.3, 0.7, 2.0)]
        return [
            RigidMotion(
                R, torch.tensor(t, dtype=x.dtype, device=x.device).expand(x.batch_size, 3).clone()
            )
            for R, t in zip(rotations, shifts)
        ]

    def act_on_vectors(self, g: RigidMotion, x: GeometricGraph) -> GeometricGraph:
        R = g.rotation.to(x.dtype)
        return x.replace(pos=_where_real(x.mask, x.pos @ R.transpose(-1, -2), x.pos))

    def __repr__(self) -> str:
        return f"SE3(translation_scale={self.translation_scale})"
