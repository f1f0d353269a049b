"""An invariant property predictor for molecules: EGNN features, summed over atoms, to properties.

This is the regressor of EDM's conditional-generation protocol (Hoogeboom et al. 2022, Sec. 5.2
and their App.): an EGNN on atom types and coordinates alone (no bonds), trained on one half of
QM9's training split, then used to score molecules generated for target properties. It is not
EDM's exact network or training; tables label its numbers as "our predictor".

``y(x) = mean + std ⊙ W_2 silu(W_1 [Σ_i h_i / 10, (1/n) Σ_i h_i])`` with ``h_i`` the EGNN's
invariant node features: exactly invariant under atom permutations, rotations, reflections and
translations (tested), like the properties it predicts. Trained with the L1 loss on normalized
targets ``(y - mean) / std``, so that the training loop's ``loss`` and the reported mean absolute
error measure the same thing.

The module is a model the library's :class:`~symgen.training.Trainer` can train like a
generator: ``loss(batch, context=targets)`` with the targets as a
:class:`~symgen.conditioning.Context` (from :class:`~symgen.data.GraphsWithContext`).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from symgen.conditioning import Context
from symgen.generators.base import LossOutput
from symgen.models import EGNN
from symgen.models.common import mlp
from symgen.state import GeometricGraph

__all__ = ["PredictorConfig", "PropertyPredictor"]


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of a :class:`PropertyPredictor` (EDM's regressor: 7 layers of width 128)."""

    node_in: int
    width: int = 128
    depth: int = 7

    def __post_init__(self) -> None:
        for name in ("node_in", "width", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"PredictorConfig.{name} must be >= 1, got {getattr(self, name)}")


class PropertyPredictor(nn.Module):
    """Predicts named properties of molecules from their atom features and coordinates.

    Args:
        config: network sizes.
        names: the properties, in output column order.
        mean, std: training-set statistics (physical units) that normalize the targets.

    Examples:
        >>> from symgen.testing import make_graph
        >>> net = PropertyPredictor(PredictorConfig(node_in=3, width=8, depth=1), ["a", "b"],
        ...                         mean=[1.0, 2.0], std=[0.5, 1.0])
        >>> net.predict(make_graph([4, 3], num_types=3)).shape
        torch.Size([2, 2])
    """

    def __init__(
        self,
        config: PredictorConfig,
        names: Sequence[str],
        mean: Sequence[float] | np.ndarray,
        std: Sequence[float] | np.ndarray,
    ) -> None:
        super().__init__()
        self.config = config
        self.names = tuple(names)
        c = len(self.names)
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=torch.float32)
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float64), dtype=torch.float32)
        if mean_t.shape != (c,) or std_t.shape != (c,) or not bool((std_t > 0).all()):
            raise ValueError(f"mean and std must be {c} numbers (std positive), one per property")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)
        w = config.width
        self.egnn = EGNN(
            node_in=config.node_in, node_out=w, width=w, depth=config.depth, attention=True
        )
        self.head = mlp([2 * w, w, c])

    def forward(self, x: GeometricGraph) -> Float[Tensor, "b c"]:
        """Normalized predictions ``(y - mean) / std``."""
        h = self.egnn(x, torch.zeros(x.batch_size, dtype=x.dtype, device=x.device)).node
        m = x.mask[..., None].to(h.dtype)
        total = (h * m).sum(1)
        pooled = torch.cat([total / 10.0, total / m.sum(1).clamp_min(1.0)], -1)
        return self.head(pooled)

    @torch.no_grad()
    def predict(self, x: GeometricGraph) -> Float[Tensor, "b c"]:
        """Predicted properties in physical units."""
        return self(x) * self.std + self.mean

    def normalize(self, values: Tensor) -> Tensor:
        """``(y - mean) / std``."""
        return (values - self.mean) / self.std

    def loss(
        self,
        batch: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
        context: Context | None = None,
    ) -> LossOutput:
        """Mean absolute error on the given normalized targets (``context``; ``generator`` is
        unused: the loss has no randomness)."""
        if context is None:
            raise ValueError("the property predictor trains on targets: pass context=")
        pred = self(batch)
        m = context.mask.to(device=pred.device, dtype=pred.dtype)
        err = (pred - context.values.to(device=pred.device, dtype=pred.dtype)).abs() * m
        per_property = err.sum(0) / m.sum(0).clamp_min(1.0)
        total = err.sum() / m.sum().clamp_min(1.0)
        return LossOutput(total, {n: per_property[i] for i, n in enumerate(self.names)})

    def extra_repr(self) -> str:
        return f"properties={list(self.names)}"

    def to_record(self) -> dict[str, Any]:
        """What rebuilds this predictor besides its weights (stored in checkpoints)."""
        return {
            "config": asdict(self.config),
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "PropertyPredictor":
        """Inverse of :meth:`to_record` (weights loaded separately)."""
        return cls(
            PredictorConfig(**record["config"]), record["names"], record["mean"], record["std"]
        )
