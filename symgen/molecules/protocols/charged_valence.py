"""Charge-aware stability of the molecules' own bonds and formal charges.

Source: symgen's own valence table (:data:`~symgen.molecules.bonds.CHARGED_ALLOWED_VALENCES`,
version 1), in the spirit of the charge-aware stability of models that generate bonds and
formal charges: MiDi (Vignac et al. 2023, *MiDi: Mixed Graph and 3D Denoising Diffusion for
Molecule Generation*, ECML PKDD), FlowMol (Dunn & Koes 2024) and SemlaFlow (Irwin et al.
2024). It is not a reproduction of any one published table: numbers are comparable between
models scored here, not with those papers' tables.

An atom is stable when the sum of its bond orders is an allowed valence for its element *and*
formal charge (N⁺ 4, O⁻ 1, ...); a molecule when all its atoms are. Only molecules whose own
bonds pass :func:`~symgen.molecules.metrics.check_bonds` are scored; the others count as
unstable, with the reason (``"bonds: no bonds given"``, ``"bonds: bad bonds: ..."``). The
protocol is skipped when no molecule carries bonds.

Metrics: ``atom_stability_given_bonds`` and ``molecule_stability_given_bonds`` (denominators:
atoms of all input molecules, input molecules).
"""

from symgen.molecules.protocols.base import EvaluationContext, Scores, stability_scores

__all__ = ["NAME", "VERSION", "score"]

NAME = "charged-valence"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """Charge-aware atom and molecule stability of the molecules' own bonds.

    Examples:
        >>> import numpy as np
        >>> from symgen.molecules.molecule import Molecule
        >>> nh4 = Molecule(np.array([7, 1, 1, 1, 1]), np.zeros((5, 3)),
        ...                charges=np.array([1, 0, 0, 0, 0]),
        ...                bonds=np.array([[0, 1], [0, 2], [0, 3], [0, 4]]),
        ...                bond_orders=np.array([1, 1, 1, 1]))
        >>> score(EvaluationContext((nh4,), num_molecules=1, num_atoms=5)).metrics
        {'atom_stability_given_bonds': (1.0, 5), 'molecule_stability_given_bonds': (1.0, 1)}
    """
    if not context.has_given_bonds:
        return Scores()
    rows = [j for j, a in enumerate(context.given_bonds) if a is not None]
    bonds = [context.given_bonds[j] for j in rows]
    scores = stability_scores(
        context, rows, bonds, table="charged", prefix="bonds", suffix="_given_bonds"
    )
    # molecules without usable own bonds are unstable, with the reason; they are not in rows
    return Scores(scores.metrics, reasons={**context.given_bond_problems, **scores.reasons})
