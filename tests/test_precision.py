"""Mixed precision: bfloat16 autocast of the network only, float32 untouched bit for bit."""

import pytest
import torch

from symgen.generators import CanonicalGenerator, FlowMatching, NetworkAdapter
from symgen.models import build_network
from symgen.precision import bfloat16_is_native, resolve_precision
from symgen.priors import CenteredGaussianPrior
from symgen.testing import make_graph
from symgen.training import Trainer, TrainingConfig, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(
        "canon_transformer",
        node_in=3,
        node_out=3,
        edge_in=2,
        edge_out=2,
        width=32,
        depth=2,
        heads=4,
        pair_width=8,
        num_rbf=8,
        rank_dim=8,
    )


def _generator(net: torch.nn.Module) -> CanonicalGenerator:
    return CanonicalGenerator(
        None,
        CenteredGaussianPrior(),
        None,
        FlowMatching(),
        net,
        node_dim=3,
        edge_dim=2,
        sizes=[0, 0, 0, 1, 1, 1, 1],
    )


def test_float32_is_the_network_itself_bit_for_bit():
    x = make_graph([5, 3, 6], edge_features=2, seed=1)
    t = torch.tensor([0.1, 0.5, 0.9])
    net = _net()
    direct = net(x, t)
    adapted = NetworkAdapter(net, precision="float32")(x, t)
    for a, b in (
        (direct.pos, adapted.pos),
        (direct.node, adapted.node),
        (direct.edge, adapted.edge),
    ):
        assert torch.equal(a, b)
    gen = _generator(_net())
    reference = _generator(_net())
    a = gen.loss(x, generator=torch.Generator().manual_seed(3)).total
    gen.precision = "bfloat16"
    gen.precision = "float32"  # switching back restores the exact float32 path
    b = gen.loss(x, generator=torch.Generator().manual_seed(3)).total
    c = reference.loss(x, generator=torch.Generator().manual_seed(3)).total
    assert torch.equal(a, b) and torch.equal(a, c)


def test_bfloat16_outputs_are_float32_and_close():
    """Autocast changes the network's arithmetic, not its result beyond bfloat16 round-off."""
    x = make_graph([5, 3, 6], edge_features=2, seed=1)
    t = torch.tensor([0.1, 0.5, 0.9])
    net = _net().requires_grad_(False)
    full = NetworkAdapter(net)(x, t)
    low = NetworkAdapter(net, precision="bfloat16")(x, t)
    assert low.dtype == torch.float32 and low.edge is not None and low.edge.dtype == torch.float32
    for a, b in ((full.pos, low.pos), (full.node, low.node), (full.edge, low.edge)):
        scale = float(a.abs().max())
        assert float((a - b).abs().max()) < 0.05 * scale  # bfloat16 keeps 8 bits of mantissa
        assert float((a - b).abs().max()) > 0  # and it did run in bfloat16
    with pytest.raises((ValueError, TypeError), match="precision"):  # a Literal option
        NetworkAdapter(net, precision="float16")  # type: ignore[arg-type]


def test_trainer_in_bfloat16_trains_and_records_its_precision(tmp_path):
    data = make_graph([5, 3, 6, 4] * 8, edge_features=2, seed=2)
    gen = _generator(_net())
    cfg = TrainingConfig(
        max_steps=12,
        batch_size=8,
        warmup_steps=2,
        log_every=1,
        ckpt_every=6,
        precision="bfloat16",
        progress=False,
    )
    result = Trainer(gen, data, cfg, out_dir=tmp_path).fit()
    assert gen.precision == "bfloat16" and result.step == 12
    assert torch.isfinite(torch.tensor(result.final_loss))
    for p in gen.parameters():
        assert p.dtype == torch.float32  # weights and optimizer state stay float32
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["precision"] == "bfloat16"
    # a resumed run keeps the checkpoint's precision, whatever the new config says
    resumed = _generator(_net(5))
    cfg2 = TrainingConfig(**{**cfg.__dict__, "max_steps": 14, "precision": "float32"})
    Trainer(resumed, data, cfg2, out_dir=tmp_path).fit(resume=True)
    assert resumed.precision == "bfloat16"


def test_auto_precision_is_decided_by_the_hardware_and_a_timing(monkeypatch):
    data = make_graph([5, 3, 6, 4] * 4, edge_features=2, seed=2)
    messages = []
    gen = _generator(_net())
    trainer = Trainer(
        gen,
        data,
        TrainingConfig(batch_size=8, precision="auto", progress=False),
        log=messages.append,
    )
    before = {k: v.clone() for k, v in gen.state_dict().items() if isinstance(v, torch.Tensor)}
    chosen = trainer.choose_precision()
    assert chosen == gen.precision and chosen in ("float32", "bfloat16")
    assert messages and messages[-1].startswith(f"precision: {chosen}")
    for k, v in gen.state_dict().items():  # the timing never changes the weights
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, before[k]), k
    if bfloat16_is_native("cpu"):
        assert "ms in bfloat16" in messages[-1]
    import symgen.training.loop as loop

    monkeypatch.setattr(loop, "bfloat16_is_native", lambda device: False)
    assert trainer.choose_precision() == "float32"
    assert "no native bfloat16" in messages[-1]


def test_native_bfloat16_is_read_from_the_cpu_flags(monkeypatch):
    """AVX-512 alone (oneDNN emulates bfloat16 there) is not native; AVX-512 BF16 or AMX is."""
    import symgen.precision as precision

    real = precision.cpu_flags()
    assert real is None or isinstance(real, frozenset)
    for flags, native in [
        ({"avx2", "avx512f", "avx512bw", "avx512vl"}, False),
        ({"avx512f", "avx512_bf16"}, True),
        ({"amx_tile", "amx_bf16"}, True),
        ({"fp", "asimd", "bf16"}, True),  # Arm
        (set(), False),
    ]:
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert precision.bfloat16_is_native("cpu") is native, flags
        assert resolve_precision("auto", "cpu") == ("bfloat16" if native else "float32")


def test_precision_errors_are_named():
    assert resolve_precision("float32", "cpu") == "float32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half", "cpu")
    # a Literal option: the test suite's runtime type checker or the ValueError outside it
    with pytest.raises((ValueError, TypeError), match="precision"):
        TrainingConfig(precision="half")  # type: ignore[arg-type]
    gen = _generator(_net())
    for target in (gen, gen.network):  # set later, on the generator or on its adapter
        with pytest.raises((ValueError, TypeError), match="precision"):
            target.precision = "half"  # type: ignore[assignment]
    assert gen.precision == "float32"

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch, generator=None):  # noqa: ANN001, ANN201
            raise AssertionError("not reached")

    trainer = Trainer(
        Plain(), make_graph([3] * 8), TrainingConfig(batch_size=4, precision="bfloat16")
    )
    with pytest.raises(ValueError, match="no 'precision' setting"):
        trainer.choose_precision()


@pytest.mark.slow
def test_compiled_network_matches_eager_and_trains():
    """torch.compile (minutes on a CPU the first time): the same outputs, training and sampling."""
    x = make_graph([5, 3, 6], edge_features=2, seed=1)
    t = torch.tensor([0.1, 0.5, 0.9])
    net = _net().requires_grad_(False)
    eager = NetworkAdapter(net)(x, t)
    adapter = NetworkAdapter(net)
    adapter.use_compile()
    assert adapter.compiled and set(adapter.state_dict()) == set(NetworkAdapter(net).state_dict())
    compiled = adapter(x, t)
    torch.testing.assert_close(compiled.pos, eager.pos, atol=1e-4, rtol=1e-4)
    data = make_graph([5, 3, 6, 4] * 8, edge_features=2, seed=2)
    gen = _generator(_net())
    cfg = TrainingConfig(max_steps=4, batch_size=8, warmup_steps=1, compile=True, progress=False)
    result = Trainer(gen, data, cfg).fit()
    assert result.step == 4 and gen.network.compiled
    assert bool(torch.isfinite(gen.sample([4, 5], steps=2).pos).all())


def test_compile_falls_back_without_a_compiler_or_when_it_fails(monkeypatch):
    """The preset asks for torch.compile; a machine that cannot compile trains eagerly instead."""
    data = make_graph([5, 3, 6, 4] * 8, edge_features=2, seed=2)
    cfg = TrainingConfig(max_steps=3, batch_size=8, warmup_steps=1, compile=True, progress=False)
    import symgen.training.loop as loop

    messages: list[str] = []
    with monkeypatch.context() as m:
        m.setattr(loop.shutil, "which", lambda name: None)
        gen = _generator(_net())
        Trainer(gen, data, cfg, log=messages.append).fit()
    assert any("compile: off" in msg for msg in messages) and not gen.network.compiled

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("C++ compile error: cannot find Python.h")

    gen = _generator(_net())
    reference = _generator(_net())
    gen.compile_network = lambda enabled=True: object.__setattr__(  # type: ignore[method-assign]
        gen.network, "_compiled", broken if enabled else None
    )
    messages.clear()
    Trainer(gen, data, cfg, log=messages.append).fit()
    assert any("torch.compile failed (RuntimeError: C++ compile error" in m for m in messages)
    Trainer(reference, data, cfg.__class__(**{**cfg.__dict__, "compile": False})).fit()
    for a, b in zip(gen.parameters(), reference.parameters()):
        assert torch.equal(a, b)  # the failed step was redone eagerly with the same draws
