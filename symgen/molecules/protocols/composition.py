"""``symgen-composition``: net charge, fragments and close atom pairs of a set of molecules.

Source: symgen (version 1). Not a quality score but what a stability number can hide: a
protocol that counts CH₃⁺ or a bare H⁺ as stable, or scores only the largest fragment, looks
better on sets of charged or fragmented molecules, and this protocol makes that visible.

* ``neutral``: share of molecules whose formal charges sum to 0 (molecules without charges
  count as neutral); ``mean_abs_net_charge``: mean of ``|sum of formal charges|``;
* ``connected``: share of molecules with a single fragment; ``mean_fragments``: mean number of
  fragments (connected components of the own bonds where a molecule has usable ones, else of
  the EDM distance-table bonds); ``single_atom_fragments``: share of molecules with an isolated
  atom;
* ``close_pairs``: share of molecules with two atoms closer than 0.5 Å;
* ``mean_atoms``: mean number of atoms.

Denominators: the scorable molecules (the count of each metric says how many).
"""

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from symgen.molecules.metrics import MIN_DISTANCE
from symgen.molecules.protocols.base import EvaluationContext, Scores, fraction

__all__ = ["NAME", "VERSION", "score"]

NAME = "symgen-composition"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """Net charges, fragment counts and close pairs of the context's molecules.

    Examples:
        >>> from symgen.molecules.molecule import Molecule
        >>> h_plus = Molecule(np.array([1]), np.zeros((1, 3)), charges=np.array([1]))
        >>> m = score(EvaluationContext((h_plus,), num_molecules=1, num_atoms=1)).metrics
        >>> m["neutral"], m["single_atom_fragments"]
        ((0.0, 1), (1.0, 1))
    """
    mols = context.molecules
    n = len(mols)
    if n == 0:
        return Scores()
    net = np.array(
        [0 if m.charges is None else int(np.sum(m.charges)) for m in mols], dtype=np.int64
    )
    fragments = np.zeros(n, dtype=np.int64)
    isolated = np.zeros(n, dtype=bool)
    close = np.zeros(n, dtype=bool)
    for j, m in enumerate(mols):
        a = context.given_bonds[j]
        a = context.edm_bonds[j] if a is None else a
        fragments[j], labels = connected_components(csr_matrix(a > 0), directed=False)
        isolated[j] = m.num_atoms > 0 and bool((np.bincount(labels) == 1).any())
        if m.num_atoms > 1:
            pos = np.asarray(m.positions, dtype=np.float64)
            d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
            close[j] = bool((d[np.triu_indices(m.num_atoms, 1)] < MIN_DISTANCE).any())
    return Scores(
        metrics={
            "neutral": (fraction(int((net == 0).sum()), n), n),
            "mean_abs_net_charge": (float(np.abs(net).mean()), n),
            "connected": (fraction(int((fragments == 1).sum()), n), n),
            "mean_fragments": (float(fragments.mean()), n),
            "single_atom_fragments": (fraction(int(isolated.sum()), n), n),
            "close_pairs": (fraction(int(close.sum()), n), n),
            "mean_atoms": (float(np.mean([m.num_atoms for m in mols])), n),
        }
    )
