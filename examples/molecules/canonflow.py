"""CanonFlow on QM9: configuration, data preparation and generator assembly.

Shared by ``train.py``, ``sample.py`` and ``benchmarks/canonical_vs_equivariant.py`` so that
every method is built by the same code and differs only by its configuration.

Methods (all through :class:`symgen.generators.CanonicalGenerator`):

* CanonFlow: canonicalized QM9 (:func:`symgen.canon.geometric_spectral_canonicalizer`, cached
  once) → ``CanonTransformer`` → flow matching with an aligned prior and minibatch OT;
  positions, atom types, charges and bonds generated jointly (discrete flow matching for the
  categorical channels);
* augmentation only: ``canonicalize = false, augment = true`` (random S_n × SO(3) per batch);
* equivariant baselines: ``canonicalize = false, network = "egnn"`` or ``"e3nn"``, centred prior;
* diffusion instead of flow matching: ``process = "diffusion"``.
"""

import argparse
import dataclasses
import hashlib
import json
import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import torch

from symgen.canon import geometric_spectral_canonicalizer
from symgen.couplings import (
    AlignedCoupling,
    AlignedOTCoupling,
    IndependentCoupling,
    MinibatchOTCoupling,
)
from symgen.generators import CanonicalGenerator, FlowMatching, VPDiffusion
from symgen.groups import SO3, DirectProduct, SymmetricGroup
from symgen.models import build_network
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
from symgen.molecules.loader import canonicalize_dataset
from symgen.molecules.qm9 import load_qm9, qm9_splits
from symgen.priors import (
    AlignedPrior,
    CategoricalPrior,
    CategoricalSpec,
    CenteredGaussianPrior,
    ProductPrior,
)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PRESETS = ("quick", "full")


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Every option of a training run (config files and command-line flags set these)."""

    # run
    out_dir: str = _opt("runs/canonflow", "output folder: checkpoints, logs, samples, metrics")
    seed: int = _opt(0, "base seed: data order, noise and time draws of every step derive from it")
    device: str = _opt("cpu", "torch device, e.g. cpu or cuda")
    amp: bool = _opt(False, "bfloat16 autocast for the network (CUDA only)")
    threads: int = _opt(0, "torch CPU threads (0: torch's default)")
    progress: bool = _opt(True, "show progress bars")
    # data
    qm9_limit: int = _opt(
        0, "parse only the first N QM9 molecules (0: all; for tests and smoke runs)"
    )
    train_limit: int = _opt(
        0, "use only the first N molecules of the training split (0: all 100,000)"
    )
    val_limit: int = _opt(1000, "validation molecules used for the validation loss")
    cache_dir: str = _opt("", "symgen cache folder for QM9 and the canonical cache ('' = default)")
    # method
    canonicalize: bool = _opt(True, "train on the canonical slice (CanonFlow); false for baselines")
    augment: bool = _opt(
        False, "random S_n x SO(3) augmentation of each batch (with canonicalize=false)"
    )
    process: str = _opt("flow", "generative process", ("flow", "diffusion"))
    prior: str = _opt(
        "aligned",
        "position prior: aligned (canonicalized noise) or centred Gaussian",
        ("aligned", "centered"),
    )
    coupling: str = _opt(
        "ot", "prior-data coupling", ("independent", "ot", "aligned", "aligned_ot")
    )
    categorical: str = _opt(
        "discrete",
        "categorical channels: discrete flow matching or continuous relaxation",
        ("discrete", "continuous"),
    )
    categorical_source: str = _opt(
        "marginal", "categorical prior", ("uniform", "masked", "marginal")
    )
    prediction: str = _opt(
        "velocity",
        "flow-matching target: clean data x1 (velocity derived) or velocity",
        ("data", "velocity"),
    )
    solver: str = _opt("euler", "flow-matching ODE solver", ("euler", "heun", "midpoint"))
    final_tokens: str = _opt(
        "argmax",
        "read-out of atom, charge and bond tokens at the last sampling step: mode or draw",
        ("argmax", "sample"),
    )
    stochasticity: float = _opt(
        0.0, "discrete flow: rate of detailed-balance re-noising of tokens while sampling"
    )
    token_exponent: float = _opt(
        1.0, "discrete flow: tokens follow the schedule t^k (k > 1: decided after positions)"
    )
    self_condition: bool = _opt(
        False, "self-conditioning: feed the network its previous clean-data estimate"
    )
    time_grid: float = _opt(
        1.0, "sampling time grid t_k = (k/N)^p: p > 1 puts more of the steps near t = 0"
    )
    temperature: float = _opt(
        1.0, "discrete flow: temperature of the token draws while sampling (< 1 sharpens)"
    )
    weight_pos: float = _opt(1.0, "loss weight of the position term")
    weight_node: float = _opt(1.0, "loss weight of the atom-type and charge terms")
    weight_edge: float = _opt(1.0, "loss weight of the bond term")
    # network
    network: str = _opt("canon_transformer", "network", ("canon_transformer", "egnn", "e3nn"))
    width: int = _opt(128, "network width (hidden channels; e3nn: scalar channels)")
    depth: int = _opt(4, "number of layers")
    heads: int = _opt(8, "attention heads (transformer)")
    # optimisation
    batch_size: int = _opt(64, "molecules per batch (per process under DDP)")
    lr: float = _opt(5e-4, "peak learning rate (AdamW)")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    warmup_steps: int = _opt(200, "linear learning-rate warm-up steps")
    max_steps: int = _opt(20000, "total optimizer steps")
    time_budget_min: float = _opt(0.0, "stop training after this many minutes (0: no limit)")
    grad_clip: float = _opt(1.0, "gradient-norm clipping threshold (0: off)")
    ema_decay: float = _opt(0.999, "EMA decay of the weights used for sampling")
    # logging and evaluation
    log_every: int = _opt(25, "steps between CSV/TensorBoard log rows")
    val_every: int = _opt(500, "steps between validation losses (0: off)")
    ckpt_every: int = _opt(250, "steps between checkpoints")
    eval_every: int = _opt(0, "steps between small sample-and-evaluate rounds (0: off)")
    eval_samples: int = _opt(64, "molecules sampled in each periodic evaluation")
    tensorboard: bool = _opt(True, "write TensorBoard logs (needs the 'logging' extra)")
    # final sampling
    sample_steps: int = _opt(50, "solver steps when sampling")
    final_samples: int = _opt(1000, "molecules sampled and evaluated at the end (0: skip)")
    strain_molecules: int = _opt(200, "molecules whose MMFF strain is computed in evaluations")


def config_from_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a flat dict of :class:`TrainConfig` fields.

    Unknown keys fail with a message naming them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with path.open("rb") as f:
        raw = tomllib.load(f)
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):  # allow [sections] for readability
            flat.update(value)
        else:
            flat[key] = value
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise ValueError(f"{path}: unknown config keys {unknown}")
    return flat


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--name`` flag per :class:`TrainConfig` field (default: taken from preset/config)."""
    group = parser.add_argument_group("configuration overrides (applied after --preset/--config)")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        kind = hints[f.name]
        conv = _parse_bool if kind is bool else kind
        choices = f.metadata.get("choices")
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=conv,
            default=None,
            choices=choices,
            metavar=None if choices else kind.__name__.upper(),
            help=f"{f.metadata['help']} (default: {f.default!r})",
        )


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults ← preset file ← ``--config`` file ← command-line flags."""
    values: dict[str, Any] = {}
    if getattr(args, "preset", None):
        values.update(config_from_file(CONFIG_DIR / f"{args.preset}.toml"))
    if getattr(args, "config", None):
        values.update(config_from_file(args.config))
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    cfg = TrainConfig(**values)
    validate_config(cfg)
    return cfg


def validate_config(cfg: TrainConfig) -> None:
    """Reject contradictory or out-of-range options with a message naming them."""
    if cfg.canonicalize and cfg.augment:
        raise ValueError("canonicalize and augment exclude each other: pick one")
    if cfg.prior == "aligned" and not cfg.canonicalize:
        raise ValueError(
            "prior='aligned' puts noise on the canonical slice; it needs canonicalize=true"
        )
    if cfg.self_condition and (cfg.network != "canon_transformer" or cfg.process != "flow"):
        raise ValueError(
            "self_condition is implemented for the canon_transformer network with process='flow'"
        )
    if cfg.process == "diffusion":
        if cfg.coupling != "independent":
            raise ValueError("diffusion trains on independent noise: use coupling='independent'")
        if cfg.prior != "centered":
            raise ValueError(
                "diffusion's forward process needs Gaussian noise: use prior='centered'"
            )
        if cfg.categorical != "continuous":
            raise ValueError(
                "diffusion treats atom types, charges and bonds as continuous one-hot "
                "channels: use categorical='continuous'"
            )
    for name in (
        "batch_size",
        "max_steps",
        "log_every",
        "ckpt_every",
        "sample_steps",
        "width",
        "depth",
    ):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")


# ------------------------------------------------------------------------------------ data
LAYOUT = FeatureLayout.qm9()
SPEC = CategoricalSpec(
    node_blocks=(LAYOUT.num_types, LAYOUT.num_charges), edge_classes=LAYOUT.edge_dim
)


@dataclass
class PreparedData:
    """Training and validation molecules (canonical representatives when canonicalizing)."""

    train: MoleculeDataset
    val: MoleculeDataset
    train_smiles: list[str]
    flagged_share: float


def _cache_dir(cfg: TrainConfig) -> str | None:
    return cfg.cache_dir or None


def prepare_data(cfg: TrainConfig, *, progress: bool = True) -> PreparedData:
    """Load QM9 (cached), split it, and canonicalize the training molecules once (cached)."""
    full = load_qm9(_cache_dir(cfg), progress=progress, limit=cfg.qm9_limit or None)
    split = qm9_splits(len(full))
    train_idx = split["train"][: cfg.train_limit] if cfg.train_limit else split["train"]
    train = full.subset(train_idx)
    val = full.subset(split["valid"][: cfg.val_limit])
    smiles = [full.smiles[i] for i in split["train"]]
    flagged = 0.0
    if cfg.canonicalize:
        from symgen.molecules.cache import resolve_cache_dir

        key = hashlib.sha1(
            np.ascontiguousarray(train_idx).tobytes() + str(cfg.qm9_limit).encode()
        ).hexdigest()[:12]
        path = resolve_cache_dir(_cache_dir(cfg)) / "qm9" / f"canonical_train_{key}.npz"
        if path.exists():
            from symgen.molecules.loader import CanonicalizedDataset

            canon = CanonicalizedDataset.load(path)
        else:
            canon = canonicalize_dataset(
                train,
                geometric_spectral_canonicalizer(),
                progress=progress,
                path=path,
                batch_size=1024,
            )
        train = canon.representatives
        val = canonicalize_dataset(
            val, geometric_spectral_canonicalizer(), progress=False
        ).representatives
        flagged = float(np.mean(canon.flagged))
    return PreparedData(train=train, val=val, train_smiles=smiles, flagged_share=flagged)


# ------------------------------------------------------------------------------- generator
def network_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Network constructor arguments for the chosen architecture."""
    io = dict(
        node_in=LAYOUT.node_dim,
        node_out=LAYOUT.node_dim,
        edge_in=LAYOUT.edge_dim,
        edge_out=LAYOUT.edge_dim,
    )
    if cfg.network == "canon_transformer":
        return dict(
            io, width=cfg.width, depth=cfg.depth, heads=cfg.heads, self_condition=cfg.self_condition
        )
    if cfg.network == "egnn":
        return dict(io, width=cfg.width, depth=cfg.depth)
    return dict(io, scalars=cfg.width, vectors=max(4, cfg.width // 4), depth=cfg.depth)


def build_generator(
    cfg: TrainConfig, data: PreparedData, featurizer: MolecularFeaturizer
) -> CanonicalGenerator:
    """Assemble canonicalizer, prior, coupling, process and network as the config says."""
    stats_batch = featurizer.batch_from_dataset(data.train, np.arange(min(len(data.train), 4000)))
    categorical = (
        CategoricalPrior.from_data(stats_batch, SPEC, pseudo_count=1.0)
        if cfg.categorical_source == "marginal"
        else CategoricalPrior(SPEC, cfg.categorical_source)
    )
    canonicalizer = geometric_spectral_canonicalizer() if cfg.canonicalize else None
    if cfg.categorical == "continuous":  # one-hot relaxation: Gaussian noise on every channel
        prior: Any = CenteredGaussianPrior()
    else:
        prior = ProductPrior(CenteredGaussianPrior(features=False), categorical)
    if cfg.prior == "aligned":
        prior = AlignedPrior(prior, geometric_spectral_canonicalizer())
    coupling = {
        "independent": IndependentCoupling,
        "ot": MinibatchOTCoupling,
        "aligned": AlignedCoupling,
        "aligned_ot": AlignedOTCoupling,
    }[cfg.coupling]()
    if cfg.process == "flow":
        process: Any = FlowMatching(
            prediction=cfg.prediction,
            solver=cfg.solver,
            spec=SPEC,
            categorical=cfg.categorical,
            final_tokens=cfg.final_tokens,
            stochasticity=cfg.stochasticity,
            token_exponent=cfg.token_exponent,
            self_conditioning=cfg.self_condition,
            time_grid=cfg.time_grid,
            temperature=cfg.temperature,
            weights={"pos": cfg.weight_pos, "node": cfg.weight_node, "edge": cfg.weight_edge},
        )
    else:
        process = VPDiffusion(
            spec=SPEC,
            weights={"pos": cfg.weight_pos, "node": cfg.weight_node, "edge": cfg.weight_edge},
        )
    model = build_network(cfg.network, **network_kwargs(cfg))
    augment = DirectProduct(SymmetricGroup(), SO3()) if cfg.augment else None
    sizes = torch.as_tensor(np.bincount(data.train.num_atoms, minlength=30), dtype=torch.float64)
    return CanonicalGenerator(
        canonicalizer,
        prior,
        coupling,
        process,
        model,
        assume_canonical=cfg.canonicalize,
        augment_group=augment,
        sizes=sizes,
        node_dim=LAYOUT.node_dim,
        edge_dim=LAYOUT.edge_dim,
    )


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain dict (for checkpoints and logs)."""
    return dataclasses.asdict(cfg)


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """JSON file written through a temporary file and a rename."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    os.replace(tmp, path)


def eprint(*args: Any) -> None:
    """Print to stderr (keeps stdout for results)."""
    print(*args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ sample + evaluate
@dataclass
class SampleResult:
    """Generated molecules, the evaluator's report and the sampling throughput."""

    molecules: list
    report: Any
    molecules_per_second: float


@torch.no_grad()
def sample_molecules(
    gen: CanonicalGenerator,
    num: int,
    *,
    num_steps: int,
    featurizer: MolecularFeaturizer,
    seed: int,
    device: str = "cpu",
    batch_size: int = 250,
    progress: bool = True,
) -> tuple[list, float]:
    """Draw ``num`` symmetrized molecules (sizes from the training histogram).

    Returns the molecules and the sampling rate in molecules per second.
    """
    import time

    from tqdm.auto import tqdm

    g = torch.Generator(device=device).manual_seed(seed)
    out, t0 = [], time.perf_counter()
    with tqdm(
        total=num, desc=f"sampling ({num_steps} steps)", disable=not progress, unit="mol"
    ) as bar:
        while len(out) < num:
            b = min(batch_size, num - len(out))
            x = gen.sample(b, num_steps=num_steps, generator=g)
            out.extend(featurizer.decode(x.to(device="cpu", dtype=torch.float32)))
            bar.update(b)
    elapsed = time.perf_counter() - t0
    return out, num / max(elapsed, 1e-9)


def evaluate_molecules(molecules: list, data: PreparedData, *, strain_molecules: int = 200) -> Any:
    """Score with :func:`symgen.molecules.evaluate.evaluate` against the QM9 training split."""
    from symgen.molecules.evaluate import evaluate

    return evaluate(
        molecules,
        reference=data.train,
        reference_smiles=data.train_smiles,
        max_strain_molecules=strain_molecules,
        max_reference_molecules=5000,
    )


def save_samples(molecules: list, report: Any, out_dir: str | Path, *, grid: int = 24) -> None:
    """Write samples.sdf, samples.xyz, samples.png (first ``grid``) and metrics.json."""
    from rdkit import RDLogger

    from symgen.molecules import io as mio

    RDLogger.DisableLog("rdApp.*")  # invalid samples are expected; the report counts them
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mio.write_sdf(molecules, out_dir / "samples.sdf")
    mio.write_xyz(molecules, out_dir / "samples.xyz")
    RDLogger.DisableLog("rdApp.*")
    try:
        png = mio.draw_grid_png(molecules[:grid])
        (out_dir / "samples.png").write_bytes(png)
    except Exception as err:  # drawing is a convenience; never lose the metrics over it
        eprint(f"could not draw the PNG grid: {err}")
    report.write_json(out_dir / "metrics.json")
