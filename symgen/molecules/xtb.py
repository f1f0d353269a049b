"""GFN2-xTB single points and geometry relaxation through the ``tblite`` package (optional extra).

The ``geom-revisited`` protocol (:mod:`symgen.molecules.protocols.geom_revisited`) relaxes each
generated molecule with GFN2-xTB and reports how far it moved (bond, angle and torsion changes,
RMSD) and how much energy it released (ΔE_relax). The protocol's authors ran the ``xtb``
program (``xtb mol.xyz --opt --charge q``: GFN2-xTB, gas phase, optimization level *normal*);
``tblite`` computes the same GFN2-xTB energies and gradients from Python but has no optimizer,
so :func:`relax_gfn2` minimizes with SciPy's L-BFGS and applies xtb's *normal* convergence
thresholds (energy change below 5·10⁻⁶ Eh between iterations, gradient norm below
10⁻³ Eh/bohr, at most ``clamp(3 · atoms, 200, 10000)`` iterations). xtb measures its
gradient in internal coordinates and uses its own optimizer (ANCopt), so relaxed geometries
agree with xtb's to within the convergence tolerance, not bit for bit.

Install with ``pip install "symgen[xtb]"``.
"""

import math
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

__all__ = [
    "HARTREE_TO_KCAL_MOL",
    "BOHR_PER_ANGSTROM",
    "RelaxResult",
    "xtb_available",
    "relax_gfn2",
    "max_cycles",
]

#: kcal/mol per hartree (CODATA 2018).
HARTREE_TO_KCAL_MOL: float = 627.509474063
#: bohr per ångström (1 / 0.529177210903).
BOHR_PER_ANGSTROM: float = 1.0 / 0.529177210903
_ENERGY_THRESHOLD = 5e-6  # Eh, xtb "normal"
_GRADIENT_THRESHOLD = 1e-3  # Eh/bohr, xtb "normal"


def xtb_available() -> bool:
    """Whether ``tblite`` (GFN2-xTB) can be imported."""
    try:
        import tblite.interface  # noqa: F401
    except ImportError:
        return False
    return True


def max_cycles(num_atoms: int) -> int:
    """xtb's iteration limit for an optimization: ``clamp(3 · num_atoms, 200, 10000)``.

    Examples:
        >>> max_cycles(18), max_cycles(100)
        (200, 300)
    """
    return int(min(max(3 * num_atoms, 200), 10_000))


@dataclass(frozen=True)
class RelaxResult:
    """One GFN2-xTB relaxation.

    Attributes:
        positions: relaxed coordinates (Å), shape ``(k, 3)``; the input where it failed.
        energy_initial: GFN2-xTB energy of the input geometry (kcal/mol; NaN where it failed).
        energy_final: energy of the relaxed geometry (kcal/mol; NaN where it failed).
        converged: both *normal* thresholds met within the iteration limit.
        iterations: energy and gradient evaluations used.
        reason: why it failed (``""`` when it did not).
    """

    positions: np.ndarray
    energy_initial: float
    energy_final: float
    converged: bool
    iterations: int
    reason: str = ""

    @property
    def delta_e_relax(self) -> float:
        """``energy_initial - energy_final`` in kcal/mol (≥ 0 after a successful relaxation)."""
        return self.energy_initial - self.energy_final


def relax_gfn2(
    atomic_numbers: Int[np.ndarray, " k"],
    positions: Float[np.ndarray, "k 3"],
    *,
    charge: int = 0,
    iterations: int | None = None,
) -> RelaxResult:
    """Relax a geometry with GFN2-xTB (tblite) and L-BFGS to xtb's *normal* thresholds.

    Args:
        atomic_numbers: atomic numbers, shape ``(k,)``.
        positions: coordinates in Å, shape ``(k, 3)``.
        charge: total charge of the molecule (sum of formal charges); an odd electron count
            gets one unpaired electron, as xtb does by default.
        iterations: iteration limit (default :func:`max_cycles`).

    Returns:
        A :class:`RelaxResult`; SCF failures are returned with a reason, not raised.

    Raises:
        ImportError: ``tblite`` is not installed.

    Examples:
        >>> import numpy as np
        >>> h2 = relax_gfn2(np.array([1, 1]), np.array([[0.0, 0, 0], [0.9, 0, 0]]))  # GFN2: 0.78 Å
        >>> h2.converged, round(float(np.linalg.norm(h2.positions[0] - h2.positions[1])), 2)
        (True, 0.78)
    """
    from scipy.optimize import minimize
    from tblite.interface import Calculator

    z = np.asarray(atomic_numbers, dtype=np.int32)
    x0 = np.asarray(positions, dtype=np.float64) * BOHR_PER_ANGSTROM
    limit = max_cycles(len(z)) if iterations is None else int(iterations)
    electrons = int(z.sum()) - int(charge)
    try:
        calc = Calculator("GFN2-xTB", z, x0, charge=float(charge), uhf=electrons % 2)
        calc.set("verbosity", 0)
        first = calc.singlepoint()
    except Exception as err:  # tblite raises RuntimeError/TBLiteRuntimeError on SCF failures
        return RelaxResult(np.asarray(positions), math.nan, math.nan, False, 0, _first(err))
    e0 = float(first.get("energy"))
    state = {"result": first, "count": 1, "last": e0, "delta": math.inf}

    def energy_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        calc.update(positions=flat.reshape(-1, 3))
        res = calc.singlepoint(state["result"])
        state["result"], state["count"] = res, state["count"] + 1
        energy = float(res.get("energy"))
        state["delta"], state["last"] = abs(energy - state["last"]), energy
        return energy, np.asarray(res.get("gradient"), dtype=np.float64).ravel()

    def done(intermediate_result) -> None:  # SciPy passes the result under this exact name
        # the last evaluation is the accepted iterate of L-BFGS-B's line search
        grad = np.asarray(state["result"].get("gradient"), dtype=np.float64)
        if state["delta"] < _ENERGY_THRESHOLD and np.linalg.norm(grad) < _GRADIENT_THRESHOLD:
            raise StopIteration

    try:
        out = minimize(
            energy_and_gradient,
            x0.ravel(),
            jac=True,
            method="L-BFGS-B",
            callback=done,
            options={"maxiter": limit, "maxfun": 2 * limit, "gtol": 1e-7, "ftol": 1e-14},
        )
        calc.update(positions=out.x.reshape(-1, 3))  # the returned geometry, not a trial step
        final = calc.singlepoint()
    except Exception as err:
        return RelaxResult(
            np.asarray(positions),
            e0 * HARTREE_TO_KCAL_MOL,
            math.nan,
            False,
            state["count"],
            _first(err),
        )
    e1 = float(final.get("energy"))
    grad_norm = float(np.linalg.norm(final.get("gradient")))
    # both thresholds: the gradient at the returned geometry, the last energy change
    converged = grad_norm < _GRADIENT_THRESHOLD and state["delta"] < _ENERGY_THRESHOLD
    return RelaxResult(
        positions=out.x.reshape(-1, 3) / BOHR_PER_ANGSTROM,
        energy_initial=e0 * HARTREE_TO_KCAL_MOL,
        energy_final=e1 * HARTREE_TO_KCAL_MOL,
        converged=converged,
        iterations=state["count"],
        reason=""
        if converged
        else f"not converged after {out.nit} of {limit} iterations (gradient norm "
        f"{grad_norm:.1e} Eh/bohr; {out.message})",
    )


def _first(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"xtb: {text[-1] if text else type(err).__name__}"
