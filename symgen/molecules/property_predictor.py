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

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from symgen.conditioning import Context
from symgen.data import GraphsWithContext
from symgen.generators.base import LossOutput
from symgen.models import EGNN
from symgen.models.common import mlp
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
from symgen.molecules.loader import featurize_store
from symgen.molecules.molecule import Molecule
from symgen.provenance import provenance
from symgen.state import GeometricGraph
from symgen.training import ExponentialMovingAverage, Trainer, TrainingConfig, load_checkpoint

__all__ = [
    "PredictorConfig",
    "PropertyPredictor",
    "train_predictor",
    "load_predictor",
    "predict_molecules",
]

#: ``run["recipe"]`` of a property predictor's training checkpoint.
PREDICTOR_RECIPE = "property-predictor"


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


def _featurizer(layout: FeatureLayout | None) -> MolecularFeaturizer:
    return MolecularFeaturizer(layout, with_edges=False)  # geometry and atoms only, as in EDM


def train_predictor(
    train: MoleculeDataset,
    values: np.ndarray,
    names: Sequence[str],
    *,
    config: PredictorConfig | None = None,
    training: TrainingConfig,
    out_dir: str | os.PathLike[str] | None = None,
    val: MoleculeDataset | None = None,
    val_values: np.ndarray | None = None,
    layout: FeatureLayout | None = None,
    resume: bool = False,
) -> tuple[PropertyPredictor, Trainer]:
    """Train a :class:`PropertyPredictor` on molecules ``train`` with properties ``values``
    ``(N, c)`` (physical units) by the library loop (EMA, time budget, checkpoints in
    ``out_dir``, resumable). Returns the predictor with its EMA weights and the trainer.
    """
    featurizer = _featurizer(layout)
    values = np.asarray(values, dtype=np.float64)
    mean, std = values.mean(0), np.maximum(values.std(0), 1e-6)
    if config is None:
        config = PredictorConfig(node_in=featurizer.layout.node_dim)
    net = PropertyPredictor(config, names, mean, std)

    def source(ds: MoleculeDataset, v: np.ndarray) -> GraphsWithContext:
        z = torch.as_tensor((np.asarray(v, dtype=np.float64) - mean) / std, dtype=torch.float32)
        return GraphsWithContext(featurize_store(ds, featurizer), z)

    val_source = None if val is None or val_values is None else source(val, val_values)
    trainer = Trainer(
        net,
        source(train, values),
        training,
        out_dir=out_dir,
        val_data=val_source,
        run_info={
            "recipe": PREDICTOR_RECIPE,
            "predictor": net.to_record(),
            "layout": asdict(featurizer.layout),
            "provenance": provenance(training.device),
        },
    )
    trainer.fit(resume=resume)
    with trainer.averaged():
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    return net.eval(), trainer


def load_predictor(path: str | os.PathLike[str]) -> PropertyPredictor:
    """The predictor of a :func:`train_predictor` checkpoint, with its EMA weights.

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: not a property predictor's checkpoint.
    """
    state = load_checkpoint(Path(path))
    run = state.get("run", {})
    if run.get("recipe") != PREDICTOR_RECIPE:
        raise ValueError(f"{path} is not a property predictor checkpoint")
    net = PropertyPredictor.from_record(run["predictor"])
    net.load_state_dict(state["generator"])
    average = ExponentialMovingAverage(net)
    average.load_state_dict(state["ema"])
    average.copy_to(net)
    return net.eval()


@torch.no_grad()
def predict_molecules(
    predictor: PropertyPredictor,
    molecules: Sequence[Molecule] | MoleculeDataset,
    *,
    layout: FeatureLayout | None = None,
    batch_size: int = 500,
) -> np.ndarray:
    """Predicted properties ``(N, c)`` in physical units of molecules or a dataset."""
    featurizer = _featurizer(layout)
    ds = (
        molecules
        if isinstance(molecules, MoleculeDataset)
        else MoleculeDataset.from_molecules(list(molecules))
    )
    device = predictor.mean.device
    out = []
    for lo in range(0, len(ds), batch_size):
        idx = np.arange(lo, min(lo + batch_size, len(ds)))
        x = featurizer.batch_from_dataset(ds, idx).to(device=device)
        out.append(predictor.predict(x).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(predictor.names)))
