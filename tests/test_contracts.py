"""Every concrete prior, coupling, process and network of symgen against its contract class, and
a check that no concrete component of the library goes without a contract test."""

import importlib.util
import inspect
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st

from symgen.canon import Canonicalizer, geometric_spectral_canonicalizer
from symgen.couplings import (
    AlignedCoupling,
    AlignedOTCoupling,
    Coupling,
    IndependentCoupling,
    MinibatchOTCoupling,
)
from symgen.generators import (
    AffineProcess,
    CosineSchedule,
    FlowMatching,
    NetworkAdapter,
    PolynomialSchedule,
    PowerTokenSchedule,
    Process,
    VPDiffusion,
)
from symgen.groups import Group, permutation_rigid_group
from symgen.models import NETWORK_NAMES, build_network
from symgen.priors import (
    AlignedPrior,
    CategoricalPrior,
    CategoricalSpec,
    CenteredGaussianPrior,
    GaussianPrior,
    Prior,
    ProductPrior,
)
from symgen.testing import (
    CanonicalizerContract,
    CouplingContract,
    GroupContract,
    NetworkContract,
    PriorContract,
    ProcessContract,
    geometric_graphs,
)

SPEC = CategoricalSpec(node_blocks=(3,), edge_classes=3)


pytestmark = pytest.mark.usefixtures("one_thread")


def _token_prior() -> ProductPrior:
    """Positions from a centred Gaussian, SPEC's tokens uniform."""
    return ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(SPEC, "uniform"))


def _token_graphs() -> st.SearchStrategy:
    """Graphs whose features fit SPEC: one-hot node types (3) and bond classes (3)."""
    return geometric_graphs(num_types=3, edge_features=3, max_nodes=6)


# ---------------------------------------------------------------------------- priors
class TestGaussianPrior(PriorContract):
    def make_prior(self):
        return GaussianPrior(std=1.5, feature_std=0.5)


class TestCenteredGaussianPrior(PriorContract):
    def make_prior(self):
        return CenteredGaussianPrior(std=2.0, features=False)


class TestCategoricalPrior(PriorContract):
    def make_prior(self):
        p = torch.tensor([0.6, 0.3, 0.1])
        return CategoricalPrior(SPEC, "marginal", node_marginals=[p], edge_marginal=p.flip(0))

    def template_strategy(self):
        return _token_graphs()


class TestMaskedCategoricalPrior(TestCategoricalPrior):
    def make_prior(self):
        return CategoricalPrior(SPEC, "masked")


class TestAlignedPrior(PriorContract):
    def make_prior(self):
        return AlignedPrior(
            CenteredGaussianPrior(features=False), geometric_spectral_canonicalizer()
        )


class TestProductPrior(PriorContract):
    def make_prior(self):
        return _token_prior()

    def template_strategy(self):
        return _token_graphs()


# ---------------------------------------------------------------------------- couplings
class TestIndependentCoupling(CouplingContract):
    def make_coupling(self):
        return IndependentCoupling()


class TestMinibatchOTCoupling(CouplingContract):
    def make_coupling(self):
        return MinibatchOTCoupling(feature_weight=0.5)


class TestAlignedCoupling(CouplingContract):
    transforms_prior = True

    def make_coupling(self):
        return AlignedCoupling()


class TestAlignedOTCoupling(CouplingContract):
    transforms_prior = True

    def make_coupling(self):
        return AlignedOTCoupling()


# ---------------------------------------------------------------------------- processes
class TestFlowMatching(ProcessContract):
    oracle_solvers = (("euler", 100), ("heun", 20), ("midpoint", 20), ("dpm2m", 20))

    def make_process(self):
        return FlowMatching()


class TestFlowMatchingDataPrediction(ProcessContract):
    oracle_solvers = (("euler", 100), ("heun", 20), ("ddim", 100))

    def make_process(self):
        return FlowMatching(prediction="data")


class TestFlowMatchingTokens(ProcessContract):
    """Discrete tokens on a √t schedule, with self-conditioning: the molecule configuration."""

    def make_process(self):
        return FlowMatching(
            spec=SPEC, token_schedule=PowerTokenSchedule(0.5), self_conditioning=True
        )

    def make_prior(self):
        return _token_prior()

    def data_strategy(self):
        return _token_graphs()


class TestVPDiffusion(ProcessContract):
    oracle_solvers = (("dpm2m", 20), ("ddim", 100), ("ancestral", 150))

    def make_process(self):
        return VPDiffusion(CosineSchedule())


class TestAffineProcess(ProcessContract):
    """The general affine process: a polynomial VP path with data prediction."""

    oracle_solvers = (("heun", 30), ("dpm2m", 30))

    def make_process(self):
        return AffineProcess(PolynomialSchedule(2.0), prediction="data", exclude_data_time=True)


def test_velocity_prediction_on_a_clamped_vp_path_is_refused():
    with pytest.raises(ValueError, match="ill-posed"):
        AffineProcess(PolynomialSchedule(2.0), prediction="velocity")


# ---------------------------------------------------------------------------- networks
class TestCanonTransformer(NetworkContract):
    def make_network(self):
        return build_network(
            "canon_transformer",
            node_in=self.node_in,
            node_out=self.node_out,
            edge_in=self.edge_in,
            edge_out=self.edge_out,
            width=16,
            depth=2,
            heads=2,
            pair_width=4,
            num_rbf=4,
            rank_dim=4,
            self_condition=True,
        )


class TestEGNN(NetworkContract):
    equivariant_group = permutation_rigid_group(translation_scale=1.0)

    def make_network(self):
        return build_network(
            "egnn",
            node_in=self.node_in,
            node_out=self.node_out,
            edge_in=self.edge_in,
            edge_out=self.edge_out,
            width=16,
            depth=2,
        )


class TestE3NN(NetworkContract):
    equivariant_group = permutation_rigid_group(translation_scale=1.0)

    def make_network(self):
        pytest.importorskip("e3nn")
        return build_network(
            "e3nn",
            node_in=self.node_in,
            node_out=self.node_out,
            edge_in=self.edge_in,
            edge_out=self.edge_out,
            scalars=8,
            vectors=4,
            depth=1,
        )


class TestNetworkAdapter(TestCanonTransformer):
    def make_network(self):
        return NetworkAdapter(super().make_network(), center=True)


class TestNetworkAdapterBfloat16(TestCanonTransformer):
    """The network under bfloat16 autocast: same layout, padding and independence promises."""

    def make_network(self):
        return NetworkAdapter(super().make_network(), precision="bfloat16")


# ---------------------------------------------------------------------------- coverage
CONTRACTS = {
    Group: (GroupContract, "make_group"),
    Canonicalizer: (CanonicalizerContract, "make_canonicalizer"),
    Prior: (PriorContract, "make_prior"),
    Coupling: (CouplingContract, "make_coupling"),
    Process: (ProcessContract, "make_process"),
}


def _subclasses(base: type) -> set[type]:
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            found.add(sub)
    return found


def _library_classes(base: type) -> set[type]:
    return {
        c
        for c in _subclasses(base)
        if c.__module__.startswith("symgen.") and not inspect.isabstract(c)
    }


#: The other test modules holding contract subclasses, loaded once and kept alive (a class is
#: listed by ``__subclasses__`` only while something references it).
_LOADED: dict[str, object] = {}


def _made_by_contract_tests(contract: type, factory: str) -> set[type]:
    """Types of the objects that the contract subclasses (the tests) build."""
    here = Path(__file__).resolve().parent
    for name in ("test_groups", "test_canon"):
        if name not in _LOADED:
            spec = importlib.util.spec_from_file_location(f"_coverage_{name}", here / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _LOADED[name] = module
    made = set()
    for sub in _subclasses(contract):
        try:
            made.add(type(getattr(sub(), factory)()))
        except pytest.skip.Exception:  # an optional dependency is missing
            continue
    return made


@pytest.mark.parametrize("base", list(CONTRACTS), ids=lambda b: b.__name__)
def test_every_concrete_component_has_a_contract_test(base: type) -> None:
    contract, factory = CONTRACTS[base]
    missing = _library_classes(base) - _made_by_contract_tests(contract, factory)
    names = sorted(f"{c.__module__}.{c.__name__}" for c in missing)
    assert not missing, f"concrete {base.__name__} classes without a contract test: {names}"


def test_every_network_has_a_contract_test() -> None:
    small = {"canon_transformer": {"width": 8}, "egnn": {"width": 8}, "e3nn": {"scalars": 8}}
    library = {NetworkAdapter}
    for name in NETWORK_NAMES:
        if name == "e3nn" and importlib.util.find_spec("e3nn") is None:
            continue
        library.add(type(build_network(name, node_in=2, node_out=2, depth=1, **small[name])))
    missing = library - _made_by_contract_tests(NetworkContract, "make_network")
    assert not missing, f"networks without a contract test: {sorted(c.__name__ for c in missing)}"
