"""Couplings between prior samples and data: independent, minibatch OT, group-aligned.

* :class:`IndependentCoupling` — the product coupling;
* :class:`MinibatchOTCoupling` — exact OT plan per batch (POT ``ot.emd``, SciPy fallback),
  within groups of equal graph size;
* :class:`AlignedCoupling` — each pair aligned over S_n × SO(3) (Hungarian + Kabsch);
* :class:`AlignedOTCoupling` — OT over aligned pair costs.
"""

from symgen.couplings.aligned import AlignedCoupling, AlignedOTCoupling, Alignment, align, kabsch
from symgen.couplings.base import Coupled, Coupling, IndependentCoupling, pair_cost, pairwise_cost
from symgen.couplings.ot import MinibatchOTCoupling, assignment

__all__ = [
    "Coupled",
    "Coupling",
    "IndependentCoupling",
    "MinibatchOTCoupling",
    "AlignedCoupling",
    "AlignedOTCoupling",
    "Alignment",
    "align",
    "kabsch",
    "assignment",
    "pair_cost",
    "pairwise_cost",
]
