"""``symgen-charged-valence``: symgen's strict charge-aware stability of the molecules' own bonds.

Source: symgen's own table (:data:`~symgen.molecules.bonds.CHARGED_ALLOWED_VALENCES`,
version 1); not a published protocol, so its numbers are comparable only between models scored
here. What it adds to ``midi``: no neutral radicals (neutral C must have valence 4 and neutral N
3, where MiDi's table also admits 3 and 2), charged states by the isoelectronic rule (N⁺ like C,
O⁻ like F) and a charge the element does not list is unstable (MiDi judges it as neutral).
It is the rule symgen's featurizer checks training molecules against.

An atom is stable when the sum of its bond orders is an allowed valence for its element *and*
formal charge; a molecule when all its atoms are. Molecules without usable own bonds count as
unstable, with the reason; the protocol is skipped when no molecule carries bonds.

Metrics: ``atom_stability``, ``molecule_stability`` (denominators: atoms of all input
molecules, input molecules). Reasons prefixed ``symgen-charged-valence:``.
"""

from symgen.molecules.bonds import SYMGEN_CHARGED_TABLE
from symgen.molecules.protocols.base import (
    EvaluationContext,
    Scores,
    given_bond_rows,
    prefixed,
    stability_scores,
)

__all__ = ["NAME", "VERSION", "score"]

NAME = "symgen-charged-valence"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """Strict charge-aware atom and molecule stability of the molecules' own bonds.

    Examples:
        >>> import numpy as np
        >>> from symgen.molecules.molecule import Molecule
        >>> nh4 = Molecule(np.array([7, 1, 1, 1, 1]), np.zeros((5, 3)),
        ...                charges=np.array([1, 0, 0, 0, 0]),
        ...                bonds=np.array([[0, 1], [0, 2], [0, 3], [0, 4]]),
        ...                bond_orders=np.array([1, 1, 1, 1]))
        >>> score(EvaluationContext((nh4,), num_molecules=1, num_atoms=5)).metrics
        {'atom_stability': (1.0, 5), 'molecule_stability': (1.0, 1)}
    """
    if not context.has_given_bonds:
        return Scores(notes=[f"{NAME}: skipped, no molecule carries its own bonds"])
    rows, bonds = given_bond_rows(context)
    scores = stability_scores(
        context, rows, bonds, table=SYMGEN_CHARGED_TABLE, charged=True, prefix=NAME
    )
    reasons = {**prefixed(NAME, context.given_bond_problems), **scores.reasons}
    return Scores(scores.metrics, reasons=reasons)
