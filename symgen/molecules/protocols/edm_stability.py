"""EDM distance-table stability: atom and molecule stability from geometry alone.

Source: Hoogeboom, Satorras, Vignac & Welling 2022, *Equivariant Diffusion for Molecule
Generation in 3D* (ICML), the "atom stability" and "molecule stability" columns of Table 1
(QM9), computed as in their ``bond_analyze.py``. Bonds are inferred from interatomic distances
with the EDM tables (:func:`~symgen.molecules.bonds.infer_bonds_edm`); an atom is stable when
the sum of its bond orders is an allowed valence of its element
(:data:`~symgen.molecules.bonds.EDM_ALLOWED_VALENCES`), a molecule when all its atoms are.

Metrics: ``atom_stability`` (stable atoms / atoms of all input molecules) and
``molecule_stability`` (stable molecules / input molecules); unscorable input molecules count
as unstable. Failure reasons: ``"edm: unstable: atom 0 C has valence 5 (allowed 4)"``.
"""

from symgen.molecules.protocols.base import EvaluationContext, Scores, stability_scores

__all__ = ["NAME", "VERSION", "score"]

NAME = "edm-distance-table"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """Atom and molecule stability of the context's molecules with EDM-inferred bonds.

    Examples:
        >>> from numpy import array
        >>> from symgen.molecules.molecule import Molecule
        >>> water = Molecule(array([8, 1, 1]), array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
        >>> score(EvaluationContext((water,), num_molecules=2, num_atoms=3)).metrics
        {'atom_stability': (1.0, 3), 'molecule_stability': (0.5, 2)}
    """
    rows = range(len(context.molecules))
    return stability_scores(context, rows, context.edm_bonds, table="edm", prefix="edm")
