"""Minibatch optimal-transport couplings (exact plans: POT's network simplex or SciPy)."""

from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from symgen.couplings.base import Coupled, Coupling, check_same_layout, pairwise_cost
from symgen.shapes import PerGraphInt
from symgen.state import GeometricGraph

__all__ = ["MinibatchOTCoupling", "assignment", "AssignmentSolver"]

#: Assignment solvers: POT's exact ``ot.emd``, SciPy's Hungarian, or POT when installed.
AssignmentSolver = Literal["auto", "pot", "scipy"]


def _scipy_assignment(cost: np.ndarray) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(cost.shape[1], dtype=np.int64)
    perm[cols] = rows
    return perm


def _pot_assignment(cost: np.ndarray) -> np.ndarray | None:
    import ot  # POT, imported lazily (optional dependency: symgen[ot])

    m = cost.shape[0]
    w = np.full(m, 1.0 / m)
    plan = ot.emd(w, w, np.ascontiguousarray(cost, dtype=np.float64))
    # With equal uniform weights the optimal vertex is a permutation matrix (Birkhoff).
    src = plan.argmax(0)
    if len(set(src.tolist())) != m or not np.allclose(plan[src, np.arange(m)], 1.0 / m):
        return None
    return src.astype(np.int64)


def assignment(cost: Float[Tensor, "m k"], solver: AssignmentSolver = "auto") -> Int[Tensor, " k"]:
    """Optimal one-to-one matching for a square cost matrix.

    Returns ``src`` with ``src[j]`` = the row matched to column ``j``, minimising
    ``Σ_j cost[src[j], j]``. ``solver="pot"`` uses POT's exact ``ot.emd`` with uniform weights
    (whose optimal plan is a permutation matrix), ``"scipy"`` uses
    ``scipy.optimize.linear_sum_assignment``; ``"auto"`` tries POT and falls back to SciPy when
    POT is not installed (or, rarely, returns a non-permutation plan).

    Examples:
        >>> assignment(torch.tensor([[0., 1.], [1., 0.]])).tolist()
        [0, 1]
    """
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square matrix, got shape {tuple(cost.shape)}")
    if not bool(torch.isfinite(cost).all()):
        raise ValueError("cost contains NaN or inf")
    c = cost.detach().to("cpu", torch.float64).numpy()
    perm = None
    if solver in ("auto", "pot"):
        try:
            perm = _pot_assignment(c)
        except ImportError:
            if solver == "pot":
                raise ImportError(
                    "solver='pot' needs POT: pip install pot (or symgen[ot])"
                ) from None
    elif solver != "scipy":
        raise ValueError(f"unknown solver {solver!r}; choose auto, pot or scipy")
    if perm is None:
        perm = _scipy_assignment(c)
    return torch.as_tensor(perm, device=cost.device)


def size_classes(num_nodes: PerGraphInt) -> list[Tensor]:
    """Batch indices grouped by number of real nodes (one tensor per size, in increasing size)."""
    return [(num_nodes == k).nonzero().flatten() for k in torch.unique(num_nodes).tolist()]


class MinibatchOTCoupling(Coupling):
    """Exact minibatch optimal transport between prior and data batches (Tong et al. 2023).

    Within each group of graphs with the same number of real nodes, the prior samples are
    permuted by the optimal assignment for the cost ``C[i, j] = Σ_real |pos0_i - pos1_j|²
    (+ feature_weight · Σ_real |node0_i - node1_j|²)``; graphs of different sizes are never
    paired (their cost is infinite). With uniform weights on equal batches the OT plan is a
    permutation matrix, so the coupling is "without replacement" and both marginals are kept
    exactly. Plans are solved with POT's ``ot.emd`` when installed, else SciPy's
    ``linear_sum_assignment`` (same optimum).

    Examples:
        >>> x0 = GeometricGraph(torch.randn(8, 4, 3), torch.zeros(8, 4, 1),
        ...                    torch.ones(8, 4, dtype=bool))
        >>> x1 = x0.replace(pos=torch.randn(8, 4, 3))
        >>> c = MinibatchOTCoupling().couple(x0, x1)
        >>> sorted(c.source_index.tolist()) == list(range(8))
        True
    """

    def __init__(self, *, feature_weight: float = 0.0, solver: AssignmentSolver = "auto") -> None:
        if solver not in ("auto", "pot", "scipy"):
            raise ValueError(f"unknown solver {solver!r}; choose auto, pot or scipy")
        self.feature_weight = float(feature_weight)
        self.solver = solver

    def cost_matrix(self, x0: GeometricGraph, x1: GeometricGraph) -> Float[Tensor, "b b"]:
        """The pairwise cost used for the plan (``inf`` across size classes)."""
        return pairwise_cost(x0, x1, feature_weight=self.feature_weight)

    def couple(
        self, x0: GeometricGraph, x1: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> Coupled:
        check_same_layout(x0, x1)
        # the plans are solved on the CPU: one transfer in and one out, not one per size class
        cost = self.cost_matrix(x0, x1).detach().cpu()
        src = torch.arange(x1.batch_size)
        for idx in size_classes(x1.num_nodes.cpu()):
            if len(idx) > 1:
                sub = cost[idx][:, idx]
                src[idx] = idx[assignment(sub, self.solver)]
        src = src.to(x1.device)
        return Coupled(
            x0=x0.index(src),
            x1=x1,
            source_index=src,
            target_index=torch.arange(x1.batch_size, device=x1.device),
        )

    def __repr__(self) -> str:
        return f"MinibatchOTCoupling(feature_weight={self.feature_weight}, solver={self.solver!r})"
