"""The canonicalizer interface: canonical orbit representative, group element and tie margin."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from symgen.groups import Group
from symgen.shapes import PerGraph, PerGraphBool
from symgen.state import GeometricGraph

__all__ = ["Canonicalization", "Canonicalizer"]


@dataclass(frozen=True)
class Canonicalization:
    """The result of canonicalizing a batch ``x``.

    Attributes:
        representative: the canonical representative ``s = κ(x)``, same shapes and mask as ``x``.
        element: the batched group element ``g`` with ``act(g, s) == x``.
        margin: per-graph distance from a tie (e.g. a relative eigengap or the smallest gap
            between consecutive sort keys); 0 means the canonical form is ambiguous.
        flagged: ``margin < threshold``: the canonical form may differ for a transformed copy of
            ``x``; the representative is still in the orbit of ``x`` (a documented fallback).
        details: optional per-graph diagnostics, e.g. the raw relative eigengap and the raw order
            gap when ``margin`` combines several decisions (keys are documented by each
            canonicalizer); empty by default.
    """

    representative: GeometricGraph
    element: Any
    margin: PerGraph
    flagged: PerGraphBool
    details: dict[str, Tensor] = field(default_factory=dict)


class Canonicalizer(ABC):
    """Maps every graph to a canonical representative of its orbit under :attr:`group`.

    Contract (checked by :class:`symgen.testing.CanonicalizerContract`):

    * invariance: ``κ(act(g, x)) == κ(x)`` for unflagged inputs and every group element ``g``;
    * reconstruction: ``act(element, representative) == x``;
    * idempotence: ``κ(representative) == representative`` with the identity element;
    * padding slots are left untouched; on flagged inputs the representative stays in the orbit.

    A new canonicalizer is a subclass that sets ``group`` and implements :meth:`canonicalize`.

    Examples:
        >>> from symgen.canon import CentroidCanonicalizer
        >>> import torch
        >>> x = GeometricGraph(torch.ones(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=bool))
        >>> CentroidCanonicalizer().canonicalize(x).representative.pos.abs().max().item()
        0.0
    """

    #: The group whose orbits are canonicalized.
    group: Group
    #: Inputs with ``margin < threshold`` are flagged (0: never flagged, e.g. centring).
    threshold: float = 0.0
    #: Version of the algorithm: bump it when a change alters representatives, so that caches
    #: keyed by :meth:`config` are rebuilt.
    version: str = "1"
    #: Attributes that change speed but never results (left out of :meth:`config`).
    config_exclude: tuple[str, ...] = ()

    def config(self) -> dict[str, Any]:
        """Everything that determines the output, as JSON-ready values (cache keys use it).

        The class, :attr:`version`, :attr:`threshold` and every public attribute that is a
        number, string, boolean or ``None``, or a canonicalizer (or a sequence of them), which
        is described by its own config; attributes in :attr:`config_exclude` are left out.

        Examples:
            >>> from symgen.canon import geometric_spectral_canonicalizer
            >>> cfg = geometric_spectral_canonicalizer().config()
            >>> cfg["class"], cfg["order_threshold"]
            ('symgen.canon.geometric.GeometricSpectralCanonicalizer', 1e-05)
        """
        out: dict[str, Any] = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": self.version,
            "threshold": self.threshold,
        }
        for name, value in sorted(vars(self).items()):
            if name.startswith("_") or name in self.config_exclude:
                continue
            if value is None or isinstance(value, (bool, int, float, str)):
                out[name] = value
            elif isinstance(value, Canonicalizer):
                out[name] = value.config()
            elif isinstance(value, (tuple, list)) and all(
                isinstance(v, Canonicalizer) for v in value
            ):
                out[name] = [v.config() for v in value]
        return out

    @abstractmethod
    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        """Canonical representative, element with ``act(element, rep) == x``, margin and flag."""

    def __call__(self, x: GeometricGraph) -> Canonicalization:
        return self.canonicalize(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
