"""Which feature channels of a :class:`~symgen.state.GeometricGraph` are categorical."""

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from symgen.shapes import EdgeFeatures, NodeMask
from symgen.state import GeometricGraph

__all__ = ["CategoricalSpec", "symmetric_pair_mask", "symmetrize_edges"]


@dataclass(frozen=True)
class CategoricalSpec:
    """Layout of the categorical channels of a batch.

    Node features are ``[block_0 | block_1 | ... | continuous]``: ``node_blocks[i]`` one-hot
    columns for the i-th categorical variable (e.g. 5 atom types, then 3 charges), followed by
    any number of continuous columns. Edge features, when ``edge_classes`` is set, are one
    categorical variable with ``edge_classes`` classes (e.g. 4 bond classes including "none")
    on every unordered pair of distinct real nodes; the diagonal and padding are all-zero.

    An all-zero block is the *masked* (absorbing) state used by masked sources.

    Examples:
        >>> spec = CategoricalSpec(node_blocks=(5, 3), edge_classes=4)
        >>> spec.block_slices()
        [slice(0, 5, None), slice(5, 8, None)]
    """

    node_blocks: tuple[int, ...] = ()
    edge_classes: int | None = None

    def __post_init__(self) -> None:
        if any(int(k) < 1 for k in self.node_blocks):
            raise ValueError(f"every node block needs at least one class, got {self.node_blocks}")
        if self.edge_classes is not None and self.edge_classes < 1:
            raise ValueError(f"edge_classes must be >= 1, got {self.edge_classes}")

    @property
    def num_categorical_node_columns(self) -> int:
        """Number of node columns taken by the categorical blocks, ``sum(node_blocks)``."""
        return int(sum(self.node_blocks))

    def block_slices(self) -> list[slice]:
        """Column slices of the node blocks, in order."""
        out, start = [], 0
        for k in self.node_blocks:
            out.append(slice(start, start + int(k)))
            start += int(k)
        return out

    def check(self, x: GeometricGraph) -> None:
        """Raise ``ValueError`` if ``x`` does not have room for these channels."""
        f = x.node.shape[-1]
        if f < self.num_categorical_node_columns:
            raise ValueError(
                f"node features have {f} columns but the spec's blocks {self.node_blocks} need "
                f"{self.num_categorical_node_columns}"
            )
        if self.edge_classes is not None:
            if x.edge is None:
                raise ValueError(
                    f"the spec has {self.edge_classes} edge classes but the batch has no edges"
                )
            if x.edge.shape[-1] != self.edge_classes:
                raise ValueError(
                    f"edge features have {x.edge.shape[-1]} columns, "
                    f"the spec says {self.edge_classes} classes"
                )


def symmetric_pair_mask(mask: NodeMask) -> Bool[Tensor, "b n n"]:
    """``True`` on pairs ``(j, k)`` of distinct real nodes."""
    pair = mask[:, :, None] & mask[:, None, :]
    eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    return pair & ~eye


def symmetrize_edges(edge: EdgeFeatures, mask: NodeMask) -> EdgeFeatures:
    """``(E + Eᵀ) / 2`` over the two node axes, zero on the diagonal and on padding pairs."""
    sym = 0.5 * (edge + edge.transpose(1, 2))
    return sym * symmetric_pair_mask(mask)[..., None].to(edge.dtype)


def _upper_to_symmetric(values: EdgeFeatures, mask: NodeMask) -> EdgeFeatures:
    """Copy the strict upper triangle onto the lower one; zero diagonal and padding."""
    n = mask.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=mask.device), 1)
    up = values * upper[None, :, :, None].to(values.dtype)
    full = up + up.transpose(1, 2)
    return full * symmetric_pair_mask(mask)[..., None].to(values.dtype)


def _classes_to_one_hot(
    classes: Int[Tensor, "..."], num_classes: int, dtype: torch.dtype
) -> Float[Tensor, "... k"]:
    return torch.nn.functional.one_hot(classes.clamp_min(0), num_classes).to(dtype) * (
        classes >= 0
    )[..., None].to(dtype)
