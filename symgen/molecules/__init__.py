"""The molecular domain: QM9/GEOM data, featurization, batching, the evaluator and file I/O.

Needs the ``molecules`` extra (RDKit, qm9pack); RDKit is imported lazily by the functions that
use it. Main entry points:

* data: :func:`~symgen.molecules.qm9.load_qm9`, :func:`~symgen.molecules.qm9.load_qm9_split`,
  :func:`~symgen.molecules.geom.load_geom_drugs`,
  :func:`~symgen.molecules.moses3d.build_moses3d` (an offline drug-like 3D set),
  :class:`~symgen.molecules.dataset.MoleculeDataset`;
* features: :class:`~symgen.molecules.featurize.FeatureLayout`,
  :class:`~symgen.molecules.featurize.MolecularFeaturizer`;
* batches: :class:`~symgen.molecules.loader.MoleculeLoader`,
  :func:`~symgen.molecules.loader.canonicalize_dataset`;
* evaluation: :func:`~symgen.molecules.evaluate.evaluate`
  (also ``python -m symgen.molecules.evaluate``).
"""

from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import GEOM_ELEMENTS, QM9_ELEMENTS, UnknownElementError
from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
from symgen.molecules.molecule import Molecule

__all__ = [
    "Molecule",
    "MoleculeDataset",
    "FeatureLayout",
    "MolecularFeaturizer",
    "QM9_ELEMENTS",
    "GEOM_ELEMENTS",
    "UnknownElementError",
]
