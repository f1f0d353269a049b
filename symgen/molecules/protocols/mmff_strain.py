"""MMFF94 strain energy: energy of the generated geometry minus energy after MMFF relaxation.

Source: the MMFF94 force field (Halgren 1996, *J. Comput. Chem.* 17, 490-519) as implemented
in RDKit; the strain protocol (version 1) is symgen's: ``E_MMFF(x) - E_MMFF(relax(x))`` in
kcal/mol, relaxation by RDKit's MMFF minimizer with at most ``strain_max_iters`` iterations
(:func:`~symgen.molecules.metrics.mmff_strain`), in the spirit of the energy and strain checks
of recent 3D-generation benchmarks. Molecules that do not sanitize, have implicit hydrogens
or lack MMFF parameters are skipped with a reason (``"mmff94-strain: ..."``) and lower
``mmff_setup_rate``; they are not in the strain statistics.

Bonds: the molecules' own bonds and charges when at least one molecule carries sound own bonds
(then only such molecules are candidates); otherwise bonds inferred with the EDM tables. The
first ``max_strain_molecules`` candidates are scored.

Metrics: ``mmff_strain_median``, ``mmff_strain_mean`` (over molecules MMFF could set up) and
``mmff_setup_rate`` (over attempted molecules); details ``mmff.converged_rate`` and
``mmff.attempted``.
"""

import math

import numpy as np

from symgen.molecules.metrics import mmff_strain
from symgen.molecules.protocols.base import EvaluationContext, Scores

__all__ = ["NAME", "VERSION", "score"]

NAME = "mmff94-strain"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """MMFF94 strain statistics of the first ``max_strain_molecules`` candidate molecules.

    Examples:
        >>> from rdkit import Chem
        >>> from rdkit.Chem import AllChem
        >>> from symgen.molecules.io import from_rdkit
        >>> m = Chem.AddHs(Chem.MolFromSmiles("CCO")); _ = AllChem.EmbedMolecule(m, randomSeed=1)
        >>> s = score(EvaluationContext((from_rdkit(m),), num_molecules=1, num_atoms=9))
        >>> s.metrics["mmff_setup_rate"], bool(s.metrics["mmff_strain_median"][0] >= 0)
        ((1.0, 1), True)
    """
    if context.max_strain_molecules == 0 or not context.molecules:
        return Scores(notes=[f"{NAME}: skipped (max_strain_molecules=0 or no molecules)"])
    own = any(a is not None for a in context.given_bonds)
    source = context.given_bonds if own else context.edm_bonds
    picked = [j for j, a in enumerate(source) if a is not None][: context.max_strain_molecules]
    st = mmff_strain(
        [context.molecules[j] for j in picked],
        [source[j] for j in picked],
        max_iters=context.strain_max_iters,
        progress=context.progress,
    )
    ok = np.isfinite(st.strain)
    fin = st.strain[ok]
    return Scores(
        metrics={
            "mmff_strain_median": (np.median(fin) if len(fin) else math.nan, len(fin)),
            "mmff_strain_mean": (np.mean(fin) if len(fin) else math.nan, len(fin)),
            "mmff_setup_rate": (st.setup_rate, len(picked)),
        },
        details={
            "mmff": {
                "converged_rate": float(st.converged[ok].mean()) if len(fin) else math.nan,
                "attempted": float(len(picked)),
            }
        },
        reasons={j: [f"{NAME}: {r}"] for j, r in zip(picked, st.reasons, strict=True) if r},
    )
