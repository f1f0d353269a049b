"""Which feature channels of a :class:`~symgen.state.GeometricGraph` are categorical."""

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from symgen.state import GeometricGraph

__all__ = ["CategoricalSpec"]


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


def _classes_to_one_hot(
    classes: Int[Tensor, "..."], num_classes: int, dtype: torch.dtype
) -> Float[Tensor, "... k"]:
    return torch.nn.functional.one_hot(classes.clamp_min(0), num_classes).to(dtype) * (
        classes >= 0
    )[..., None].to(dtype)
