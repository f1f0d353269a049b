"""Symmetry groups acting on batches of geometric graphs."""

from symgen.groups.base import Group
from symgen.groups.euclidean import (
    SE3,
    SO3,
    RigidMotion,
    Rotation,
    Translation,
    Translations,
    axis_angle_to_matrix,
    quaternion_to_matrix,
    random_rotation,
    rotation_angle,
)
from symgen.groups.product import DirectProduct, ProductElement, permutation_rigid_group
from symgen.groups.symmetric import Permutation, SymmetricGroup, random_permutation

__all__ = [
    "Group",
    "SymmetricGroup",
    "Permutation",
    "SO3",
    "Rotation",
    "Translations",
    "Translation",
    "SE3",
    "RigidMotion",
    "DirectProduct",
    "ProductElement",
    "permutation_rigid_group",
    "random_permutation",
    "random_rotation",
    "axis_angle_to_matrix",
    "quaternion_to_matrix",
    "rotation_angle",
]
