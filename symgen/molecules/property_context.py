"""Molecular properties as a generator's context: normalization and sizes given the targets.

A conditional CanonFlow model is trained on normalized targets ``(y - mean) / std`` (the
training set's statistics) and samples molecule sizes from ``p(n | y)``. Both are stored in the
generator's metadata (:meth:`PropertyContext.to_dict`), so a checkpoint conditions on values in
physical units without the training data.

``p(n | y) ∝ p(n) Π_k N(z_k; μ_{n,k}, σ_{n,k})`` over the given targets ``z_k`` (normalized),
with ``μ_{n,k}, σ_{n,k}`` the mean and standard deviation of property ``k`` among training
molecules of ``n`` atoms. This is a per-size Gaussian summary of the joint distribution of size
and properties, a rough but data-free estimate. EDM's benchmark protocol instead draws sizes and
targets jointly from real molecules; pass both explicitly for that.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from symgen.conditioning import Context, ContextError

__all__ = ["PropertyContext", "parse_targets"]

_MIN_STD = 1e-6


@dataclass(frozen=True)
class PropertyContext:
    """Names, units and statistics of the properties a model is conditioned on.

    Attributes:
        names: property names, in context column order.
        units: their units (for messages and tables).
        mean: ``(c,)`` training-set means (physical units).
        std: ``(c,)`` training-set standard deviations.
        size_counts: ``(m,)`` training molecules of each size ``n = 0..m-1``.
        size_mean: ``(m, c)`` normalized property means per size (0 where no molecule).
        size_std: ``(m, c)`` normalized standard deviations per size (1 where too few).
    """

    names: tuple[str, ...]
    units: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    size_counts: np.ndarray
    size_mean: np.ndarray
    size_std: np.ndarray

    @classmethod
    def from_data(
        cls,
        names: Sequence[str],
        units: Sequence[str],
        values: np.ndarray,
        sizes: np.ndarray,
    ) -> "PropertyContext":
        """Statistics of ``values`` ``(N, c)`` (physical units) of molecules of ``sizes``."""
        values = np.asarray(values, dtype=np.float64)
        sizes = np.asarray(sizes, dtype=np.int64)
        if values.ndim != 2 or values.shape[1] != len(names) or len(values) != len(sizes):
            raise ValueError(
                f"values must be (N, {len(names)}) with N = {len(sizes)} sizes, got {values.shape}"
            )
        mean, std = values.mean(0), np.maximum(values.std(0), _MIN_STD)
        z = (values - mean) / std
        m = int(sizes.max()) + 1
        counts = np.bincount(sizes, minlength=m)
        size_mean = np.zeros((m, len(names)))
        size_std = np.ones((m, len(names)))
        for n in np.nonzero(counts)[0]:
            zn = z[sizes == n]
            size_mean[n] = zn.mean(0)
            if len(zn) >= 5:  # fewer: keep the unit spread rather than a degenerate one
                size_std[n] = np.maximum(zn.std(0), 0.05)
        return cls(tuple(names), tuple(units), mean, std, counts, size_mean, size_std)

    @property
    def width(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the generator's metadata)."""
        return {
            "names": list(self.names),
            "units": list(self.units),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "size_counts": self.size_counts.tolist(),
            "size_mean": self.size_mean.tolist(),
            "size_std": self.size_std.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PropertyContext":
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(d["names"]),
            tuple(d["units"]),
            np.asarray(d["mean"], dtype=np.float64),
            np.asarray(d["std"], dtype=np.float64),
            np.asarray(d["size_counts"], dtype=np.int64),
            np.asarray(d["size_mean"], dtype=np.float64),
            np.asarray(d["size_std"], dtype=np.float64),
        )

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """``(y - mean) / std`` column by column (NaN stays NaN: a missing target)."""
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    def context(self, values: np.ndarray, device: torch.device | str = "cpu") -> Context:
        """The :class:`~symgen.conditioning.Context` of targets ``(b, c)`` in physical units;
        NaN marks a target that is not given."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.width:
            raise ContextError(
                f"targets must have {self.width} columns ({', '.join(self.names)}), got shape "
                f"{values.shape}"
            )
        if np.isinf(values).any():
            raise ContextError("targets must be finite numbers (NaN marks a missing target)")
        z = self.normalize(values)
        given = ~np.isnan(z)
        v = torch.as_tensor(np.where(given, z, 0.0), dtype=torch.float32, device=device)
        return Context(v, torch.as_tensor(given, device=device))

    def size_probabilities(self, values: np.ndarray) -> np.ndarray:
        """``p(n | y)`` for each row of targets ``(b, c)`` (NaN: not given), shape ``(b, m)``."""
        z = self.normalize(np.atleast_2d(values))  # (b, c)
        given = ~np.isnan(z)
        zz = np.where(given, z, 0.0)[:, None, :]
        logp = -0.5 * ((zz - self.size_mean[None]) / self.size_std[None]) ** 2 - np.log(
            self.size_std[None]
        )
        logp = (logp * given[:, None, :]).sum(-1)  # (b, m)
        with np.errstate(divide="ignore"):
            logp = logp + np.log(self.size_counts[None].astype(np.float64))
        logp -= logp.max(1, keepdims=True)
        p = np.exp(logp)
        return p / p.sum(1, keepdims=True)

    def sample_sizes(
        self, values: np.ndarray, generator: torch.Generator | None = None
    ) -> list[int]:
        """One size per row of targets, drawn from :meth:`size_probabilities`."""
        p = torch.as_tensor(self.size_probabilities(values))
        return torch.multinomial(p, 1, generator=generator)[:, 0].tolist()


def parse_targets(text: str, names: Sequence[str]) -> np.ndarray:
    """``"alpha=70,gap=0.25"`` as a ``(c,)`` row in the order of ``names`` (NaN: not given).

    Raises:
        ValueError: an unknown name (listing the model's), a repeated name, or a bad number.

    Examples:
        >>> parse_targets("gap=6000, alpha=70", ["alpha", "gap", "mu"]).tolist()
        [70.0, 6000.0, nan]
    """
    row = np.full(len(names), np.nan)
    seen: set[str] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"condition {part!r} is not name=value")
        if name not in names:
            raise ValueError(
                f"the model is not conditioned on {name!r}; its properties: {', '.join(names)}"
            )
        if name in seen:
            raise ValueError(f"property {name!r} given twice")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"{name}={value.strip()!r} is not a number") from None
        if not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {value.strip()}")
        row[list(names).index(name)] = v
        seen.add(name)
    if not seen:
        raise ValueError("no target given: write name=value pairs, e.g. alpha=70,gap=6000")
    return row
