"""RDKit validity, uniqueness and novelty, with EDM-inferred or the molecules' own bonds.

Source: validity and uniqueness as in Hoogeboom et al. 2022, *Equivariant Diffusion for
Molecule Generation in 3D* (ICML), Table 2 (QM9 "Valid" and "Valid and Unique"): an RDKit
molecule is built from the atoms and the bonds, without ``NoImplicit`` flags, and sanitized;
the canonical SMILES of its largest fragment is kept (:func:`~symgen.molecules.metrics.
rdkit_validity`). Novelty (share of the unique valid SMILES absent from the training SMILES)
and connected validity (valid and a single fragment) are reported as in later work (e.g. MiDi,
Vignac et al. 2023).

Two registry entries use this module:

* ``rdkit-sanitize/edm-bonds`` (``bonds="edm"``): bonds inferred from geometry with the EDM
  tables, formal charges ignored, as in EDM. Keys ``validity``, ``connected_validity``,
  ``uniqueness``, ``valid_and_unique``, ``novelty``; reasons prefixed ``edm:``.
* ``rdkit-sanitize/given-bonds`` (``bonds="given"``): the molecules' own bonds and formal
  charges (molecules whose bonds :func:`~symgen.molecules.metrics.check_bonds` rejects count
  as invalid); skipped when no molecule carries bonds. The same keys with the suffix
  ``_given_bonds``; reasons prefixed ``bonds:``.

Denominators: validity, connected validity and V×U are over all input molecules; uniqueness
over the valid ones; novelty over the unique valid SMILES (only with reference SMILES).
"""

import math

from symgen.molecules.metrics import novelty, rdkit_validity, uniqueness
from symgen.molecules.protocols.base import EvaluationContext, Scores

__all__ = ["NAME", "VERSION", "score"]

NAME = "rdkit-sanitize"
VERSION = "1"


def score(context: EvaluationContext, *, bonds: str = "edm") -> Scores:
    """Validity, connected validity, uniqueness, V×U and novelty of the context's molecules.

    Args:
        context: the shared evaluation context.
        bonds: ``"edm"`` (EDM-inferred bonds, no charges) or ``"given"`` (own bonds, charges).

    Examples:
        >>> import numpy as np
        >>> from symgen.molecules.molecule import Molecule
        >>> water = Molecule(np.array([8, 1, 1]),
        ...                  np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
        >>> ctx = EvaluationContext((water, water), num_molecules=3, num_atoms=6,
        ...                         reference_smiles=["C"])
        >>> s = score(ctx)
        >>> s.metrics["validity"], s.metrics["uniqueness"], s.metrics["novelty"]
        ((0.6666666666666666, 3), (0.5, 2), (1.0, 1))
    """
    if bonds == "edm":
        rows = list(range(len(context.molecules)))
        matrices, use_charges, suffix, prefix = context.edm_bonds, False, "", "edm"
    elif bonds == "given":
        if not context.has_given_bonds:
            return Scores()
        rows = [j for j, a in enumerate(context.given_bonds) if a is not None]
        matrices = [context.given_bonds[j] for j in rows]
        use_charges, suffix, prefix = True, "_given_bonds", "bonds"
    else:
        raise ValueError(f"bonds must be 'edm' or 'given', got {bonds!r}")
    val = rdkit_validity(
        [context.molecules[j] for j in rows],
        matrices,
        use_charges=use_charges,
        progress=context.progress,
    )
    n_mol = context.num_molecules
    n_valid = int(val.valid.sum())
    smiles = [s for s in val.smiles if s]

    def rate(count: int) -> float:
        return count / n_mol if n_mol else math.nan

    metrics = {
        "validity" + suffix: (rate(n_valid), n_mol),
        "connected_validity" + suffix: (rate(int(val.connected.sum())), n_mol),
        "uniqueness" + suffix: (uniqueness(smiles), n_valid),
        "valid_and_unique" + suffix: (rate(len(set(smiles))), n_mol),
    }
    reference = context.novelty_reference
    if reference is not None:
        metrics["novelty" + suffix] = (novelty(smiles, reference), len(set(smiles)))
    reasons: dict[int, list[str]] = {}
    for i, j in enumerate(rows):
        if not val.valid[i]:
            reasons[j] = [f"{prefix}: invalid: {val.errors[i]}"]
        elif val.num_fragments[i] > 1:
            reasons[j] = [f"{prefix}: disconnected: {val.num_fragments[i]} fragments"]
    return Scores(metrics=metrics, reasons=reasons)
