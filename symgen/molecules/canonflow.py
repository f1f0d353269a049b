"""The CanonFlow recipe: configuration, cached canonical data, generator, train, sample.

Used by ``examples/molecules/train.py`` and ``sample.py`` (thin command-line front ends) and by
``benchmarks/canonical_vs_equivariant.py``, so that every method is built by the same code and
differs only by its configuration.

Methods (all through :class:`symgen.generators.CanonicalGenerator`):

Data (``data``, :mod:`symgen.molecules.sources`): QM9 (default), the offline drug-like set
``moses3d``, GEOM-DRUGS from MiDi's split pickles (``geom:<folder>``), or a user's ``.sdf`` /
symgen ``.npz`` file; the feature layout follows the data (``layout = "auto"``).

* CanonFlow: canonicalized molecules (:func:`symgen.canon.geometric_spectral_canonicalizer`, cached
  once as tensors) → ``CanonTransformer`` → flow matching with an aligned prior and minibatch
  OT; positions, atom types, charges and bonds generated jointly (discrete flow matching for
  the categorical channels);
* augmentation only: ``canonicalize = false, augment = true`` (random S_n × SO(3) per batch);
* equivariant baselines: ``canonicalize = false, network = "egnn"`` or ``"e3nn"``, centred prior;
* diffusion instead of flow matching: ``process = "diffusion"``.

Named configurations ship in ``symgen/molecules/configs/`` (presets ``quick`` and ``full`` on
QM9, ``drugs-quick`` on moses3d and ``geom`` for GEOM-DRUGS, and the method overlays
``augment_only``, ``egnn_baseline``, ``e3nn_baseline``, ``diffusion``).

The canonical training data are cached under a key that covers the data's identity (QM9 build
version, moses3d recipe, a file's digest), the split and limits, the feature layout and the
canonicalizer's full configuration
(:func:`symgen.data.load_or_build`): a changed setting rebuilds the cache. A checkpoint holds the
generator's whole sampling state (size histogram, categorical marginals, sampler defaults,
feature layout), so :func:`load_generator` samples without the dataset.
"""

import argparse
import dataclasses
import functools
import json
import sys
import time
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import torch

import symgen
from symgen.canon import geometric_spectral_canonicalizer
from symgen.couplings import (
    AlignedCoupling,
    AlignedOTCoupling,
    IndependentCoupling,
    MinibatchOTCoupling,
)
from symgen.data import (
    STORE_FORMAT,
    GraphStore,
    GraphsWithContext,
    canonicalize_store,
    load_or_build,
)
from symgen.files import atomic_write_json
from symgen.generators import (
    CanonicalGenerator,
    FlowMatching,
    PowerTokenSchedule,
    SamplerOptions,
    VPDiffusion,
)
from symgen.groups import SO3, DirectProduct, SymmetricGroup
from symgen.models import build_network
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
from symgen.molecules.fragments import FragmentSampler
from symgen.molecules.loader import featurize_store
from symgen.molecules.molecule import Molecule
from symgen.molecules.property_context import PropertyContext
from symgen.molecules.sources import LAYOUT_CHOICES, TrainingData, data_kind, load_training_data
from symgen.precision import PrecisionChoice, resolve_precision
from symgen.priors import (
    AlignedPrior,
    CategoricalPrior,
    CategoricalSpec,
    CenteredGaussianPrior,
    GaussianPrior,
    Prior,
    ProductPrior,
)
from symgen.provenance import provenance
from symgen.training import (
    ExponentialMovingAverage,
    Trainer,
    TrainingConfig,
    TrainingResult,
    load_checkpoint,
)

__all__ = [
    "CanonFlowConfig",
    "CONFIG_DIR",
    "CONFIG_NAMES",
    "PreparedData",
    "PRESETS",
    "categorical_spec",
    "load_data",
    "config_from_file",
    "add_config_arguments",
    "resolve_config",
    "validate_config",
    "prepare_data",
    "build_generator",
    "sampler_options",
    "training_config",
    "train",
    "load_generator",
    "export_sampling_checkpoint",
    "SAMPLING_CHECKPOINT_FORMAT",
    "load_reference",
    "sample_molecules",
    "evaluate_molecules",
    "save_samples",
    "SampleAndEvaluate",
    "Reference",
    "sampling_record",
    "run_info",
    "export_from_checkpoint",
]

#: Folder of the named configurations shipped with the package.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Named configurations (the :data:`PRESETS` are complete; the others are overlays).
CONFIG_NAMES = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
#: Complete presets: QM9 on a CPU and a GPU, moses3d on a CPU, GEOM-DRUGS on a GPU.
PRESETS = ("quick", "full", "drugs-quick", "geom")
#: Version of the featurized-and-canonicalized training cache layout.
CACHE_VERSION = 2


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class CanonFlowConfig:
    """Every option of a CanonFlow run (config files and command-line flags set these)."""

    # run
    out_dir: str = _opt("runs/canonflow", "output folder: checkpoints, logs, samples, metrics")
    seed: int = _opt(0, "base seed: data order, noise and time draws of every step derive from it")
    device: str = _opt("cpu", "torch device, e.g. cpu or cuda")
    precision: str = _opt(
        "float32",
        "network precision: float32, bfloat16 (autocast, float32 weights), or auto (bfloat16 "
        "where native and measured faster)",
        ("auto", "float32", "bfloat16"),
    )
    compile: bool = _opt(False, "run the network through torch.compile (first step compiles)")
    threads: int = _opt(0, "torch CPU threads (0: torch's default)")
    progress: bool = _opt(True, "show progress bars")
    # data
    data: str = _opt(
        "qm9",
        "training data: qm9, moses3d (offline drug-like set), geom:<folder of MiDi's GEOM-DRUGS "
        "split pickles>, a .sdf file (3D, explicit H) or a symgen .npz dataset file",
    )
    data_molecules: int = _opt(20000, "moses3d: molecules in the set (built once, cached)")
    layout: str = _opt(
        "auto",
        "feature layout: auto (QM9's for QM9, else the GEOM elements and charges the data "
        "holds), qm9 or geom (all 16 GEOM-DRUG elements, charges -2..3)",
        LAYOUT_CHOICES,
    )
    bad_records: str = _opt(
        "skip", "unusable SD records: skip them (counted) or stop with an error", ("skip", "error")
    )
    geom_conformers: int = _opt(5, "GEOM-DRUGS: conformers per molecule (MiDi: 5)")
    split_seed: int = _opt(
        0, "seed of the train/validation split of sets without a published split (moses3d, files)"
    )
    qm9_limit: int = _opt(
        0, "parse only the first N QM9 molecules (0: all; for tests and smoke runs)"
    )
    train_limit: int = _opt(0, "use only the first N molecules of the training split (0: all)")
    val_limit: int = _opt(1000, "validation molecules used for the validation loss")
    cache_dir: str = _opt(
        "", "symgen cache folder for datasets and canonical caches ('' = default)"
    )
    # method
    canonicalize: bool = _opt(True, "train on the canonical slice (CanonFlow); false for baselines")
    augment: bool = _opt(
        False, "random S_n x SO(3) augmentation of each batch (with canonicalize=false)"
    )
    process: str = _opt("flow", "generative process", ("flow", "diffusion"))
    prior: str = _opt(
        "aligned",
        "position prior: aligned (canonicalized noise), centred Gaussian, or plain Gaussian "
        "(not centred: for fixed_parts, where the fixed atoms set the frame)",
        ("aligned", "centered", "gaussian"),
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
        "what the network predicts on positions: velocity, clean data, or noise (diffusion)",
        ("velocity", "data", "epsilon"),
    )
    token_exponent: float = _opt(
        1.0, "discrete flow: tokens follow the schedule t^k (k > 1: decided after positions)"
    )
    self_condition: bool = _opt(
        False, "self-conditioning: feed the network its previous clean-data estimate"
    )
    shortcut: float = _opt(
        0.0,
        "few-step training without a teacher: share of each batch trained with the shortcut "
        "self-consistency target (0: off; flow matching, canon_transformer)",
    )
    shortcut_levels: int = _opt(
        4, "shortcut: step sizes 2^-k, k < shortcut_levels, are trained (finer: d = 0)"
    )
    # conditioning
    condition: str = _opt(
        "",
        "condition on QM9 properties, comma-separated (alpha, gap, homo, lumo, mu, Cv; '' = "
        "unconditional)",
    )
    context_dropout: float = _opt(
        0.1, "conditioning: share of training molecules trained without their targets (CFG)"
    )
    target_dropout: float = _opt(
        0.0, "conditioning: share of single targets masked in training (ask for any subset)"
    )
    train_half: str = _opt(
        "all",
        "train on all of the training split, or its first or second half (EDM's conditional "
        "protocol: property predictor on the first, generator on the second)",
        ("all", "first", "second"),
    )
    guidance: float = _opt(1.0, "conditioning: classifier-free guidance scale when sampling")
    fixed_parts: str = _opt(
        "none",
        "substructure conditioning: train a completion model, each molecule with a random "
        "fixed part (its ring scaffold or a connected heavy-atom fragment); needs "
        "prior='gaussian'",
        ("none", "fragments"),
    )
    scaffold_share: float = _opt(
        0.5, "fixed_parts: share of molecules whose ring scaffold is the fixed part"
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
    bucket_batches: int = _opt(
        50, "batches drawn from each size-sorted pool (less padding; 1: plain random batches)"
    )
    lr: float = _opt(5e-4, "peak learning rate (AdamW)")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    fused_optimizer: bool = _opt(
        False, "AdamW's fused kernel (faster; equal to the default up to float rounding)"
    )
    warmup_steps: int = _opt(200, "linear learning-rate warm-up steps")
    max_steps: int = _opt(20000, "total optimizer steps")
    time_budget_min: float = _opt(
        0.0, "stop after this many minutes of training, over resumed runs (0: no limit)"
    )
    schedule_clock: str = _opt(
        "steps",
        "anneal the learning rate over max_steps (exact resume) or over time_budget_min "
        "(any machine finishes its schedule in the budget)",
        ("steps", "time"),
    )
    grad_clip: float = _opt(1.0, "gradient-norm clipping threshold (0: off)")
    ema_decay: float = _opt(0.999, "EMA decay of the weights used for sampling")
    # logging and evaluation
    log_every: int = _opt(25, "steps between CSV/TensorBoard log rows")
    val_every: int = _opt(500, "steps between validation losses (0: off)")
    ckpt_every: int = _opt(250, "steps between checkpoints")
    eval_every: int = _opt(0, "steps between small sample-and-evaluate rounds (0: off)")
    eval_samples: int = _opt(64, "molecules sampled in each periodic evaluation")
    eval_snapshots: bool = _opt(
        False,
        "keep the EMA sampling checkpoint of every evaluation round in OUT_DIR/snapshots/ "
        "(to ship the best of a learning curve)",
    )
    tensorboard: bool = _opt(True, "write TensorBoard logs (needs the 'logging' extra)")
    # sampling defaults (stored in the checkpoint; sample.py can override each)
    sample_steps: int = _opt(50, "solver steps when sampling")
    solver: str = _opt(
        "",
        "ODE solver when sampling ('' = the process's default: euler for flow, dpm2m for "
        "diffusion)",
        ("", "euler", "heun", "midpoint", "ddim", "dpm2m", "ancestral"),
    )
    time_grid: float = _opt(
        1.0, "sampling time grid t_k = (k/N)^p: p < 1 puts more of the steps near t = 1"
    )
    temperature: float = _opt(
        1.0, "discrete flow: temperature of the token draws while sampling (< 1 sharpens)"
    )
    stochasticity: float = _opt(
        0.0, "discrete flow: rate of detailed-balance re-noising of tokens while sampling"
    )
    final_tokens: str = _opt(
        "argmax",
        "read-out of atom, charge and bond tokens at the last sampling step: mode or draw",
        ("argmax", "sample"),
    )
    final_samples: int = _opt(1000, "molecules sampled and evaluated at the end (0: skip)")
    strain_molecules: int = _opt(200, "molecules whose MMFF strain is computed in evaluations")
    xtb_molecules: int = _opt(
        0, "final evaluation: GFN2-xTB relaxations of geom-revisited (needs tblite; 0: none)"
    )
    posebusters_molecules: int = _opt(
        100, "final evaluation: molecules checked by posebusters (when it is installed)"
    )


# ---------------------------------------------------------------------------- configuration
def config_from_file(path_or_name: str | Path) -> dict[str, Any]:
    """Read a TOML config (a path, or the name of a packaged config) into a flat dict.

    ``[sections]`` are flattened; unknown keys fail with a message naming them.
    """
    path = Path(path_or_name)
    if not path.is_file() and str(path_or_name) in CONFIG_NAMES:
        path = CONFIG_DIR / f"{path_or_name}.toml"
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path_or_name} does not exist (packaged configs: {list(CONFIG_NAMES)})"
        )
    with path.open("rb") as f:
        raw = tomllib.load(f)
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):  # allow [sections] for readability
            flat.update(value)
        else:
            flat[key] = value
    known = {f.name for f in fields(CanonFlowConfig)}
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
    """``--preset``, ``--config`` and one ``--name`` flag per :class:`CanonFlowConfig` field."""
    parser.add_argument(
        "--preset", choices=PRESETS, help="named preset in symgen/molecules/configs/"
    )
    parser.add_argument(
        "--config",
        help="a TOML config file or packaged config name, applied after --preset "
        f"(packaged: {', '.join(n for n in CONFIG_NAMES if n not in PRESETS)})",
    )
    group = parser.add_argument_group("configuration overrides (applied after --preset/--config)")
    hints = typing.get_type_hints(CanonFlowConfig)
    for f in fields(CanonFlowConfig):
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


def resolve_config(args: argparse.Namespace) -> CanonFlowConfig:
    """Defaults ← preset ← ``--config`` ← command-line flags; validated."""
    values: dict[str, Any] = {}
    if getattr(args, "preset", None):
        values.update(config_from_file(args.preset))
    if getattr(args, "config", None):
        values.update(config_from_file(args.config))
    for f in fields(CanonFlowConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    cfg = CanonFlowConfig(**values)
    validate_config(cfg)
    kind = data_kind(cfg.data)  # files and folders by absolute path: the run records them
    if kind in ("sdf", "npz"):
        cfg.data = str(Path(cfg.data).expanduser().resolve())
    elif kind == "geom":
        cfg.data = "geom:" + str(Path(cfg.data[len("geom:") :]).expanduser().resolve())
    return cfg


def validate_config(cfg: CanonFlowConfig) -> None:
    """Reject contradictory or out-of-range options with a message naming them."""
    if cfg.canonicalize and cfg.augment:
        raise ValueError("canonicalize and augment exclude each other: pick one")
    if cfg.prior == "aligned" and not cfg.canonicalize:
        raise ValueError(
            "prior='aligned' puts noise on the canonical slice; it needs canonicalize=true"
        )
    if not 0 <= cfg.shortcut < 1:
        raise ValueError(f"shortcut is a share of the batch in [0, 1), got {cfg.shortcut}")
    if cfg.shortcut and (cfg.process != "flow" or cfg.network != "canon_transformer"):
        raise ValueError(
            "shortcut (few-step training) needs process='flow' and network='canon_transformer' "
            "(a network with a step-size input)"
        )
    if cfg.self_condition and cfg.network not in ("canon_transformer", "egnn"):
        raise ValueError(
            "self_condition needs a network that accepts the estimate: "
            "network='canon_transformer' or 'egnn'"
        )
    if cfg.fixed_parts != "none":
        if not cfg.canonicalize or cfg.network != "canon_transformer":
            raise ValueError(
                "fixed_parts needs canonicalize=true and network='canon_transformer' (the fixed "
                "part's canonical frame is the molecule's frame)"
            )
        if cfg.prior != "gaussian":
            raise ValueError(
                "fixed_parts needs prior='gaussian': the fixed atoms set the frame, so the "
                "noise is neither centred nor aligned"
            )
        if cfg.coupling not in ("independent", "ot") or cfg.process != "flow" or cfg.shortcut:
            raise ValueError(
                "fixed_parts needs process='flow', coupling 'independent' or 'ot' and shortcut=0"
            )
        if not 0.0 <= cfg.scaffold_share <= 1.0:
            raise ValueError(f"scaffold_share must be in [0, 1], got {cfg.scaffold_share}")
    elif cfg.prior == "gaussian":
        raise ValueError(
            "prior='gaussian' (not centred) is for fixed_parts; unconditional models use "
            "'aligned' or 'centered'"
        )
    if cfg.condition:
        names = condition_names(cfg)
        if data_kind(cfg.data) != "qm9":
            raise ValueError("condition needs QM9 (the properties come from its CSV files)")
        if cfg.network not in ("canon_transformer", "egnn"):
            raise ValueError("condition needs network='canon_transformer' or 'egnn'")
        if len(set(names)) != len(names):
            raise ValueError(f"condition names a property twice: {cfg.condition}")
    for name in ("context_dropout", "target_dropout"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    if not np.isfinite(cfg.guidance):
        raise ValueError(f"guidance must be a finite number, got {cfg.guidance}")
    if cfg.process == "flow" and cfg.prediction == "epsilon":
        raise ValueError("flow matching predicts 'velocity' or 'data', not 'epsilon'")
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
                "channels here: use categorical='continuous'"
            )
    for name in (
        "batch_size",
        "max_steps",
        "log_every",
        "ckpt_every",
        "sample_steps",
        "width",
        "depth",
        "bucket_batches",
        "data_molecules",
        "geom_conformers",
    ):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.eval_every < 0 or (cfg.eval_every and cfg.eval_samples < 1):
        raise ValueError(
            "eval_every must be >= 0 (0: off), and evaluation rounds need eval_samples >= 1"
        )
    if cfg.eval_snapshots and not cfg.eval_every:
        raise ValueError(
            "eval_snapshots keeps the checkpoints of evaluation rounds: set eval_every > 0"
        )
    if cfg.schedule_clock == "time" and not cfg.time_budget_min > 0:
        raise ValueError("schedule_clock='time' anneals over time_budget_min: set it > 0")
    for f in fields(CanonFlowConfig):  # config files bypass argparse's choices
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            raise ValueError(
                f"{f.name} must be one of {', '.join(map(repr, choices))}, "
                f"got {getattr(cfg, f.name)!r}"
            )
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    data_kind(cfg.data)  # names the accepted forms of a bad data specification
    sampler_options(cfg)  # sampler settings are checked by SamplerOptions


def condition_names(cfg: CanonFlowConfig) -> list[str]:
    """The QM9 properties ``cfg.condition`` names, in order (empty: unconditional).

    Raises:
        ValueError: a name that is not a QM9 benchmark property
            (:data:`~symgen.molecules.qm9_properties.QM9_PROPERTY_NAMES`).
    """
    from symgen.molecules.qm9_properties import QM9_PROPERTY_NAMES

    names = [n.strip() for n in cfg.condition.split(",") if n.strip()]
    unknown = [n for n in names if n not in QM9_PROPERTY_NAMES]
    if unknown:
        raise ValueError(
            f"unknown QM9 properties {unknown} in condition; choose from "
            f"{', '.join(QM9_PROPERTY_NAMES)}"
        )
    return names


# ---------------------------------------------------------------------------- data
def categorical_spec(layout: FeatureLayout) -> CategoricalSpec:
    """The categorical blocks of a layout: atom types and charges per node, bond classes."""
    return CategoricalSpec(
        node_blocks=(layout.num_types, layout.num_charges), edge_classes=layout.edge_dim
    )


@dataclass
class PreparedData:
    """Training and validation graphs (canonical representatives when canonicalizing).

    Attributes:
        train: the training set as tensors (:class:`~symgen.data.GraphStore`).
        val: the validation set (at most ``val_limit`` molecules of the validation split).
        flagged_share: share of training molecules the canonicalizer flagged (near a tie).
        cache_built: whether the canonical cache was built by this call (else read).
        source: the molecules, their layout and the evaluator's reference
            (:class:`~symgen.molecules.sources.TrainingData`).
    """

    train: GraphStore
    val: GraphStore
    flagged_share: float
    cache_built: bool
    source: TrainingData

    @property
    def layout(self) -> FeatureLayout:
        """The feature layout of the run."""
        return self.source.layout


def _layout_dict(layout: FeatureLayout) -> dict[str, list]:
    return {
        "elements": list(layout.elements),
        "charges": list(layout.charges),
        "bond_orders": list(layout.bond_orders),
    }


def _layout_from_dict(values: Mapping[str, Any]) -> FeatureLayout:
    return FeatureLayout(**{k: tuple(v) for k, v in values.items()})


_DATA_FIELDS = (
    "data",
    "cache_dir",
    "layout",
    "data_molecules",
    "qm9_limit",
    "train_limit",
    "val_limit",
    "geom_conformers",
    "bad_records",
    "split_seed",
)


@functools.lru_cache(maxsize=2)
def _load_data(values: tuple, progress: bool) -> TrainingData:
    v = dict(zip(_DATA_FIELDS, values))
    return load_training_data(
        v["data"],
        cache_dir=v["cache_dir"] or None,
        layout=v["layout"],
        molecules=v["data_molecules"],
        qm9_limit=v["qm9_limit"],
        train_limit=v["train_limit"],
        val_limit=v["val_limit"],
        geom_conformers=v["geom_conformers"],
        bad_records=v["bad_records"],
        seed=v["split_seed"],
        progress=progress,
    )


def load_data(cfg: CanonFlowConfig, *, progress: bool = True) -> TrainingData:
    """The molecules ``cfg.data`` names (:func:`~symgen.molecules.sources.load_training_data`).

    Kept for the process (the two most recent, keyed by the data options and the resolved cache
    folder), so that the evaluation after training does not load the data a second time.
    """
    from symgen.molecules.cache import resolve_cache_dir

    values = {f: getattr(cfg, f) for f in _DATA_FIELDS}
    values["cache_dir"] = str(resolve_cache_dir(cfg.cache_dir or None))  # $SYMGEN_CACHE too
    return _load_data(tuple(values[f] for f in _DATA_FIELDS), progress)


def prepare_data(cfg: CanonFlowConfig, *, progress: bool = True) -> PreparedData:
    """The data (built once, cached), split, featurized and canonicalized once (cached as tensors).

    The canonical cache key covers the data's identity (QM9 build version and limits, moses3d
    recipe, a file's digest), the split, the feature layout, the cache layout version and the
    canonicalizer's full configuration.
    """
    from symgen.molecules.cache import resolve_cache_dir

    source = load_data(cfg, progress=progress)
    layout = source.layout
    featurizer = MolecularFeaturizer(layout)
    val = featurize_store(source.valid, featurizer)
    if not cfg.canonicalize:
        train = featurize_store(source.train, featurizer, progress=progress)
        return PreparedData(train, val, flagged_share=0.0, cache_built=False, source=source)
    canon = geometric_spectral_canonicalizer()
    if data_kind(cfg.data) == "qm9":  # the key of the first QM9 caches, kept valid
        key = {
            "what": "canonical QM9 training set",
            "version": CACHE_VERSION,
            "store": STORE_FORMAT,
            "qm9_build": source.key["qm9_build"],
            "qm9_limit": source.key["qm9_limit"],
            "train_limit": source.key["train_limit"],
            "split": "cormorant-edm",
            "layout": _layout_dict(layout),
            "canonicalizer": canon.config(),
        }
        folder = resolve_cache_dir(cfg.cache_dir or None) / "qm9"
    else:
        key = {
            "what": f"canonical {source.name} training set",
            "version": CACHE_VERSION,
            "store": STORE_FORMAT,
            "data": source.key,
            "layout": _layout_dict(layout),
            "canonicalizer": canon.config(),
        }
        folder = resolve_cache_dir(cfg.cache_dir or None) / "canonical"

    def build() -> GraphStore:
        store = featurize_store(source.train, MolecularFeaturizer(layout, dtype=torch.float64))
        return canonicalize_store(
            store, canon, batch_size=1024, progress=progress, dtype=torch.float32
        )

    train, built = load_or_build(folder, "canonical_train", key, build)
    val = canonicalize_store(val, canon, progress=False)
    flagged = float(train.graph_data["flagged"].double().mean())
    return PreparedData(train, val, flagged_share=flagged, cache_built=built, source=source)


def train_half_indices(num: int, half: str) -> np.ndarray:
    """Indices of the ``"first"`` or ``"second"`` half of ``num`` training molecules (in the
    split's order; the first half gets the extra molecule of an odd count)."""
    cut = (num + 1) // 2
    if half == "first":
        return np.arange(cut)
    if half == "second":
        return np.arange(cut, num)
    raise ValueError(f"half must be 'first' or 'second', got {half!r}")


def property_sources(
    cfg: CanonFlowConfig, data: PreparedData, train_ids: np.ndarray
) -> tuple[PropertyContext, GraphsWithContext, GraphsWithContext]:
    """The property statistics of the training molecules ``train_ids`` and the training and
    validation graphs with their normalized targets (``cfg.condition``)."""
    from symgen.molecules.qm9_properties import QM9_PROPERTIES, qm9_properties_for

    names = condition_names(cfg)
    kw = {"cache_dir": cfg.cache_dir or None, "limit": cfg.qm9_limit or None}
    values = qm9_properties_for(train_ids, names, **kw)
    context = PropertyContext.from_data(
        names,
        [QM9_PROPERTIES[n].unit for n in names],
        values,
        data.train.num_nodes.numpy(),
    )
    val_values = qm9_properties_for(data.source.valid.ids, names, **kw)
    to_tensor = functools.partial(torch.as_tensor, dtype=torch.float32)
    return (
        context,
        GraphsWithContext(data.train, to_tensor(context.normalize(values))),
        GraphsWithContext(data.val, to_tensor(context.normalize(val_values))),
    )


def property_context(gen: CanonicalGenerator) -> PropertyContext | None:
    """The property statistics a conditional CanonFlow generator carries (``None``: none)."""
    stored = gen.metadata.get("context")
    return None if stored is None else PropertyContext.from_dict(stored)


def guidance_of(gen: CanonicalGenerator) -> float:
    """The classifier-free guidance scale a conditional run samples with by default."""
    return float(gen.metadata.get("guidance", 1.0))


# ---------------------------------------------------------------------------- generator
def network_kwargs(cfg: CanonFlowConfig, layout: FeatureLayout) -> dict[str, Any]:
    """Network constructor arguments for the chosen architecture and feature layout."""
    io = dict(
        node_in=layout.node_dim,
        node_out=layout.node_dim,
        edge_in=layout.edge_dim,
        edge_out=layout.edge_dim,
    )
    if cfg.network == "canon_transformer":
        return dict(
            io,
            width=cfg.width,
            depth=cfg.depth,
            heads=cfg.heads,
            self_condition=cfg.self_condition,
            step_size=cfg.shortcut > 0,
            context_dim=len(condition_names(cfg)),
            fixed_nodes=cfg.fixed_parts != "none",
        )
    if cfg.network == "egnn":
        return dict(
            io,
            width=cfg.width,
            depth=cfg.depth,
            self_condition=cfg.self_condition,
            context_dim=len(condition_names(cfg)),
        )
    return dict(io, scalars=cfg.width, vectors=max(4, cfg.width // 4), depth=cfg.depth)


def sampler_options(cfg: CanonFlowConfig) -> SamplerOptions:
    """The sampler defaults of a run (saved in its checkpoints)."""
    solver = cfg.solver or ("euler" if cfg.process == "flow" else "dpm2m")
    return SamplerOptions(
        steps=cfg.sample_steps,
        solver=solver,  # type: ignore[arg-type]
        time_grid=cfg.time_grid,
        temperature=cfg.temperature,
        stochasticity=cfg.stochasticity,
        final_tokens=cfg.final_tokens,  # type: ignore[arg-type]
    )


def _categorical_prior(
    cfg: CanonFlowConfig, spec: CategoricalSpec, data: PreparedData | None
) -> CategoricalPrior:
    if cfg.categorical_source != "marginal":
        return CategoricalPrior(spec, cfg.categorical_source)
    if data is None:  # a placeholder, replaced by the marginals of a checkpoint
        return CategoricalPrior(
            spec,
            "marginal",
            node_marginals=[torch.ones(k) for k in spec.node_blocks],
            edge_marginal=torch.ones(spec.edge_classes),
        )
    stats = data.train.batch(np.arange(min(len(data.train), 4000)))
    return CategoricalPrior.from_data(stats, spec, pseudo_count=1.0)


def build_generator(
    cfg: CanonFlowConfig,
    data: PreparedData | None = None,
    *,
    layout: FeatureLayout | None = None,
) -> CanonicalGenerator:
    """Assemble canonicalizer, prior, coupling, process and network as the config says.

    With ``data`` the feature layout, size histogram and categorical marginals come from the
    training set; without it the layout is ``layout`` (QM9's when ``None``) and the histogram
    and marginals are placeholders, to be replaced by ``load_state_dict`` of a checkpoint (see
    :func:`load_generator`).
    """
    if data is not None:
        layout = data.layout
    elif layout is None:
        layout = FeatureLayout.qm9()
    spec = categorical_spec(layout)
    categorical = _categorical_prior(cfg, spec, data)
    canonicalizer = geometric_spectral_canonicalizer() if cfg.canonicalize else None
    position = GaussianPrior if cfg.prior == "gaussian" else CenteredGaussianPrior
    if cfg.categorical == "continuous":  # one-hot relaxation: Gaussian noise on every channel
        prior: Prior = position()
    else:
        prior = ProductPrior(position(features=False), categorical)
    if cfg.prior == "aligned":
        prior = AlignedPrior(prior, geometric_spectral_canonicalizer())
    coupling = {
        "independent": IndependentCoupling,
        "ot": MinibatchOTCoupling,
        "aligned": AlignedCoupling,
        "aligned_ot": AlignedOTCoupling,
    }[cfg.coupling]()
    weights = {"pos": cfg.weight_pos, "node": cfg.weight_node, "edge": cfg.weight_edge}
    if cfg.process == "flow":
        process: Any = FlowMatching(
            prediction=cfg.prediction,  # type: ignore[arg-type]
            spec=spec,
            categorical=cfg.categorical,  # type: ignore[arg-type]
            token_schedule=PowerTokenSchedule(cfg.token_exponent),
            self_conditioning=cfg.self_condition,
            weights=weights,
            shortcut=cfg.shortcut,
            shortcut_levels=cfg.shortcut_levels,
        )
    else:
        process = VPDiffusion(
            prediction="epsilon" if cfg.prediction == "velocity" else cfg.prediction,  # type: ignore[arg-type]
            spec=spec,
            self_conditioning=cfg.self_condition,
            weights=weights,
        )
    model = build_network(cfg.network, **network_kwargs(cfg, layout))
    augment = DirectProduct(SymmetricGroup(), SO3()) if cfg.augment else None
    sizes = None if data is None else torch.bincount(data.train.num_nodes).to(torch.float64)
    fixed: dict[str, Any] = {}
    if cfg.fixed_parts != "none":
        sampler = FragmentSampler(layout, scaffold_share=cfg.scaffold_share)
        fixed = dict(fixed_parts=sampler, fixed_clash=FIXED_CLASH_ANGSTROM, symmetrize_fixed=True)
        if data is not None:
            fixed["fixed_sizes"] = fixed_size_table(data.train, sampler, seed=cfg.seed)
    return CanonicalGenerator(
        canonicalizer,
        prior,
        coupling,
        process,
        model,
        assume_canonical=cfg.canonicalize,
        augment_group=augment,
        sizes=sizes,
        node_dim=layout.node_dim,
        edge_dim=layout.edge_dim,
        sampler=sampler_options(cfg),
        metadata={"recipe": "canonflow", "layout": _layout_dict(layout), "guidance": cfg.guidance},
        context_dim=len(condition_names(cfg)),
        context_dropout=cfg.context_dropout,
        target_dropout=cfg.target_dropout,
        **fixed,
    )


#: Two given atoms closer than this (Å) clash: shorter than any bond (H2's is 0.74 Å).
FIXED_CLASH_ANGSTROM = 0.5


def fixed_size_table(
    store: GraphStore, sampler: FragmentSampler, *, seed: int, limit: int = 20000
) -> torch.Tensor:
    """Counts ``[k, n]`` of (fixed atoms, molecule size) over one fragment draw for each of up
    to ``limit`` training molecules: the completion sizes ``p(n | k)``."""
    rng = np.random.default_rng(seed)
    chosen = torch.as_tensor(rng.permutation(len(store))[: min(limit, len(store))])
    n_max = int(store.num_nodes.max())
    table = np.zeros((n_max + 1, n_max + 1))
    for lo in range(0, len(chosen), 512):
        x = store.batch(chosen[lo : lo + 512])
        if x.edge is None:
            raise ValueError("fixed parts need molecules with bonds (edge channels)")
        node, edge = x.node.float().numpy(), x.edge.float().numpy()
        for i, k in enumerate(x.num_nodes.tolist()):
            table[int(sampler.choose(node[i], edge[i], k, rng).sum()), k] += 1
    return torch.as_tensor(table)


def training_config(cfg: CanonFlowConfig) -> TrainingConfig:
    """The library loop's settings of a run."""
    return TrainingConfig(
        max_steps=cfg.max_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        time_budget_s=cfg.time_budget_min * 60,
        grad_clip=cfg.grad_clip,
        ema_decay=cfg.ema_decay,
        seed=cfg.seed,
        bucket_batches=cfg.bucket_batches,
        log_every=cfg.log_every,
        ckpt_every=cfg.ckpt_every,
        val_every=cfg.val_every,
        device=cfg.device,
        precision=cfg.precision,  # type: ignore[arg-type]
        compile=cfg.compile,
        fused_optimizer=cfg.fused_optimizer,
        schedule_clock=cfg.schedule_clock,  # type: ignore[arg-type]
        progress=cfg.progress,
        tensorboard=cfg.tensorboard,
    )


def run_info(cfg: CanonFlowConfig, layout: FeatureLayout | None = None) -> dict[str, Any]:
    """What a checkpoint records about the run (recipe, whole config, feature layout, and where
    it ran: :func:`provenance`)."""
    info = {
        "recipe": "canonflow",
        "config": dataclasses.asdict(cfg),
        "symgen": symgen.__version__,
        "provenance": provenance(cfg.device),
    }
    if layout is not None:
        info["layout"] = _layout_dict(layout)
    return info


def eprint(*args: Any) -> None:
    """Print to stderr (keeps stdout for results)."""
    print(*args, file=sys.stderr, flush=True)


@dataclass
class Reference:
    """What the evaluator compares samples with: the training molecules and their SMILES.

    ``smiles`` is ``None`` where the data have no SMILES (the evaluator then writes them from
    the molecules' bonds); ``headline_protocols`` are the protocols printed side by side for
    this data (:attr:`~symgen.molecules.sources.TrainingData.headline_protocols`).
    """

    molecules: MoleculeDataset
    smiles: list[str] | None
    headline_protocols: tuple[str, ...]


class SampleAndEvaluate:
    """A training hook: sample with the EMA weights and score the samples (a learning curve).

    Returns (and the trainer appends to ``evaluation.csv``) molecule stability and validity
    under the ``edm`` protocol (bonds from geometry) and the ``midi`` protocol (the generated
    bonds and charges), the bond-length W1 and the median MMFF strain; column names are the
    report keys ``"<protocol>/<metric>"``.

    Args:
        every: steps between rounds.
        num: molecules per round.
        reference: the evaluator's reference (see :func:`load_reference`).
        strain_molecules: molecules whose MMFF strain is computed (0: none).
        snapshot_dir: when given, each round first writes the EMA sampling checkpoint it
            samples from to ``snapshot_dir/step_<step>.pt`` (float32), so that the best round
            of a learning curve can be shipped.
    """

    name = "evaluation"
    keys = (
        "edm/molecule_stability",
        "edm/validity",
        "midi/molecule_stability",
        "midi/validity",
        "symgen-geometry-w1/bond_length_w1",
        "mmff94-strain/mmff_strain_median",
    )
    protocols = ("edm", "midi", "symgen-geometry-w1", "mmff94-strain")

    def __init__(
        self,
        every: int,
        num: int,
        reference: Reference,
        *,
        strain_molecules: int = 100,
        snapshot_dir: str | Path | None = None,
    ) -> None:
        self.every = int(every)
        self.num = int(num)
        self.reference = reference
        self.strain_molecules = int(strain_molecules)
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)

    def __call__(self, trainer: Trainer, step: int) -> dict[str, float]:
        if self.snapshot_dir is not None:
            export_sampling_checkpoint(trainer, self.snapshot_dir / f"step_{step:07d}.pt")
        with trainer.averaged() as gen:
            mols, _ = sample_molecules(gen, self.num, seed=step, progress=False)  # type: ignore[arg-type]
        rep = evaluate_molecules(
            mols, self.reference, strain_molecules=self.strain_molecules, protocols=self.protocols
        )
        return {k: rep.get(k) for k in self.keys}


def snapshot_folder(out_dir: str | Path) -> Path:
    """Where ``eval_snapshots`` keeps each evaluation round's sampling checkpoint."""
    return Path(out_dir) / "snapshots"


def drop_later_snapshots(out_dir: str | Path, *, resume: bool) -> list[Path]:
    """Delete the evaluation snapshots a run is about to redo (or that belong to an old run).

    A new run in ``out_dir`` deletes them all; a resumed run deletes those after its
    checkpoint's step, as the trainer drops the CSV rows after it. Returns the deleted paths.
    """
    folder = snapshot_folder(out_dir)
    if not folder.is_dir():
        return []
    last = 0
    checkpoint = Path(out_dir) / "checkpoint.pt"
    if resume and checkpoint.is_file():
        last = int(load_checkpoint(checkpoint)["step"])
    dropped = []
    for path in folder.glob("step_*.pt"):
        step = path.stem.removeprefix("step_")
        if not step.isdigit() or int(step) > last:
            path.unlink()
            dropped.append(path)
    return sorted(dropped)


def train(
    cfg: CanonFlowConfig, *, resume: bool = False, hooks: Sequence[Any] = ()
) -> tuple[CanonicalGenerator, Trainer, TrainingResult] | None:
    """Prepare the data, build the generator and train it with the library loop.

    Returns ``(generator, trainer, result)`` on the main process (``None`` on other ranks of
    a DDP run), the generator holding its last weights (the EMA is ``trainer.ema``).
    """
    from symgen.training import init_distributed

    rank, world, cfg.device = init_distributed(cfg.device)
    main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    data = prepare_data(cfg, progress=cfg.progress and main)
    train_ids = data.source.train.ids
    if cfg.train_half != "all":
        half = train_half_indices(len(data.train), cfg.train_half)
        data.train, train_ids = data.train.subset(half), train_ids[half]
    torch.manual_seed(cfg.seed)  # network initialisation only; training draws use step generators
    gen = build_generator(cfg, data)
    train_source: Any = data.train
    val_source: Any = data.val
    if cfg.condition:
        context, train_source, val_source = property_sources(cfg, data, train_ids)
        gen.metadata["context"] = context.to_dict()
    hooks = list(hooks)
    if cfg.eval_every and main:
        reference = Reference(
            data.source.train, data.source.reference_smiles, data.source.headline_protocols
        )
        snapshots = snapshot_folder(cfg.out_dir) if cfg.eval_snapshots else None
        hooks.append(
            SampleAndEvaluate(cfg.eval_every, cfg.eval_samples, reference, snapshot_dir=snapshots)
        )
    if main:
        drop_later_snapshots(cfg.out_dir, resume=resume)
    trainer = Trainer(
        gen,
        train_source,
        training_config(cfg),
        out_dir=cfg.out_dir,
        val_data=val_source,
        hooks=hooks,
        run_info=run_info(cfg, data.layout),
    )
    if main:
        atomic_write_json(Path(cfg.out_dir) / "config.json", dataclasses.asdict(cfg))
        params = sum(p.numel() for p in gen.parameters() if p.requires_grad)
        eprint(
            f"{cfg.network}: {params:,} parameters | method: canonicalize={cfg.canonicalize} "
            f"augment={cfg.augment} prior={cfg.prior} coupling={cfg.coupling} "
            f"process={cfg.process} | {data.source.name}: train {len(data.train):,} molecules "
            f"(mean {data.source.train.num_atoms.mean():.1f} atoms, flagged "
            f"{100 * data.flagged_share:.2f}%), {len(trainer.batcher)} steps/epoch | data ready "
            f"in {time.perf_counter() - t_start:.0f} s"
            + (" (canonical cache built)" if data.cache_built else "")
        )
        notes = {k: v for k, v in data.source.notes.items() if v}
        if notes:
            eprint(f"{data.source.name}: {json.dumps(notes)}")
    result = trainer.fit(resume=resume)
    if world > 1:
        # every rank (rank 0 may still be writing its last checkpoint) reaches the teardown
        # before the process group goes: a rank that tore down alone aborted now and then
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if not main:
        return None
    eprint(
        f"trained {result.step} steps ({result.steps_this_run} this run) in "
        f"{result.train_seconds / 60:.1f} min of training"
        + (" (time budget reached)" if result.stopped_by == "time_budget" else "")
    )
    return gen, trainer, result


# ---------------------------------------------------------------------------- sampling
def load_generator(
    checkpoint: str | Path,
    *,
    ema: bool = True,
    device: str = "cpu",
    precision: PrecisionChoice | None = None,
) -> tuple[CanonicalGenerator, CanonFlowConfig, dict[str, Any]]:
    """A generator ready to sample, from a training checkpoint alone (no dataset).

    Returns ``(generator, config, checkpoint state)``; with ``ema`` the weights are the EMA's.
    Reads training checkpoints and the sampling checkpoints of :func:`export_sampling_checkpoint`.
    The network runs at the precision the run trained in, unless ``precision`` says otherwise
    (``"auto"``: bfloat16 where the device computes it natively).

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: not a CanonFlow checkpoint.
    """
    state = load_checkpoint(checkpoint, map_location="cpu")  # moved with the generator below
    run = state.get("run", {})
    if state.get("weights") == "ema":  # a sampling checkpoint: its weights are the EMA's
        if not ema:
            warnings.warn(
                f"{checkpoint} holds only EMA weights: there are no raw weights to use",
                stacklevel=2,
            )
        ema = False
    if run.get("recipe") != "canonflow":
        raise ValueError(f"{checkpoint} is not a CanonFlow training checkpoint")
    values = dict(run["config"])
    if "amp" in values:  # checkpoints written before `precision` replaced `amp`
        values["precision"] = "bfloat16" if values.pop("amp") else "float32"
    unknown = sorted(set(values) - {f.name for f in fields(CanonFlowConfig)})
    if unknown:
        raise ValueError(
            f"{checkpoint} records config fields this version of symgen does not know: "
            f"{', '.join(unknown)}"
        )
    cfg = CanonFlowConfig(**values)
    cfg.device = device
    extra = state["generator"].get("_extra_state", {})
    recorded = run.get("layout") or extra.get("metadata", {}).get("layout")
    layout = _layout_from_dict(recorded) if recorded else FeatureLayout.qm9()
    gen = build_generator(cfg, layout=layout).to(device)
    gen.load_state_dict(state["generator"])
    if ema:
        average = ExponentialMovingAverage(gen)
        average.load_state_dict(state["ema"])
        average.copy_to(gen)
    trained = state.get("precision", "float32")
    gen.precision = trained if precision is None else resolve_precision(precision, device)
    gen.eval()
    return gen, cfg, state


def _cpu_copy(
    value: Any, shared: dict[tuple, torch.Tensor], dtype: torch.dtype | None = None
) -> Any:
    """Tensors nested in mappings and sequences copied to the CPU (floating ones as ``dtype``
    when given); a tensor reached twice (a module registered under two names) is copied once."""
    if isinstance(value, torch.Tensor):
        to = dtype if dtype is not None and value.is_floating_point() else value.dtype
        key = (value.data_ptr(), to, tuple(value.shape), value.stride())
        if key not in shared:  # a copy: the live weights are restored after averaged()
            shared[key] = value.detach().to("cpu", to, copy=True)
        return shared[key]
    if isinstance(value, Mapping):
        return {k: _cpu_copy(v, shared, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v, shared, dtype) for v in value)
    return value


#: Format tag of a sampling checkpoint (EMA weights and run record, no optimizer).
SAMPLING_CHECKPOINT_FORMAT = "symgen-canonflow-sampling-1"


def export_sampling_checkpoint(
    trainer: Trainer, path: str | Path, *, dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """Write what sampling needs, and nothing else, to ``path`` (atomically).

    The generator's state with the EMA weights in place (size histogram, categorical
    marginals, sampler defaults and buffers included), stored as ``dtype`` (floating tensors
    only), with the run record, step, training time and precision; no optimizer and no second
    copy of the weights, so the file is about a quarter of a training checkpoint (an eighth
    in float16). :func:`load_generator` reads it. Returns the payload written.
    """
    from symgen.training import save_checkpoint

    with trainer.averaged() as gen:
        payload = _sampling_payload(
            gen,
            step=trainer.step,
            train_seconds=trainer.train_seconds,
            precision=trainer.precision,
            run=trainer.run_info,
            dtype=dtype,
        )
    save_checkpoint(path, payload)
    return payload


def export_from_checkpoint(
    checkpoint: str | Path,
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Write the sampling checkpoint of a training checkpoint file (its EMA weights) to ``path``.

    Like :func:`export_sampling_checkpoint`, from a file instead of a live trainer. Returns the
    payload written.
    """
    from symgen.training import save_checkpoint

    gen, _, state = load_generator(checkpoint)
    payload = _sampling_payload(
        gen,
        step=int(state["step"]),
        train_seconds=float(state.get("train_seconds", float("nan"))),
        precision=state.get("precision", "float32"),
        run=state.get("run", {}),
        dtype=dtype,
    )
    save_checkpoint(path, payload)
    return payload


def _sampling_payload(
    gen: CanonicalGenerator,
    *,
    step: int,
    train_seconds: float,
    precision: str,
    run: Mapping[str, Any],
    dtype: torch.dtype,
) -> dict[str, Any]:
    shared: dict[tuple, torch.Tensor] = {}
    weights = {  # the extra state (size counts, marginals) stays in its own dtype
        k: _cpu_copy(v, shared, None if k.endswith("_extra_state") else dtype)
        for k, v in gen.state_dict().items()
    }
    return {
        "format": SAMPLING_CHECKPOINT_FORMAT,
        "weights": "ema",
        "step": step,
        "train_seconds": train_seconds,
        "generator": weights,
        "precision": precision,
        "run": dict(run),
    }


@torch.no_grad()
def sample_molecules(
    gen: CanonicalGenerator,
    num: int,
    *,
    seed: int,
    batch_size: int = 250,
    progress: bool = True,
    targets: np.ndarray | None = None,
    sizes: Sequence[int] | None = None,
    guidance: float | None = None,
    fixed: Sequence[Molecule] | None = None,
    **sampler: Any,
) -> tuple[list[Molecule], float]:
    """Draw ``num`` symmetrized molecules, decoded.

    Sizes come from ``sizes`` if given, else from ``p(n | targets)`` of a conditional model
    given ``targets``, else from the training histogram. ``targets``: ``(num, c)`` property
    values in physical units for a conditional model (NaN: not given; ``None``:
    unconditional), sampled with the classifier-free ``guidance`` scale (default: the run's).
    ``sampler`` overrides the generator's sampler defaults (``steps``, ``solver``, ...).
    ``fixed``: for a completion model (``fixed_parts``), the given part of each molecule (one
    per molecule, or one for all): molecule ``i`` starts with those atoms, unchanged, and sizes
    follow ``p(n | k)`` unless given.
    Without fixed parts the sizes are known before sampling (drawn here from the histogram
    when not given), so batches are formed from size-sorted molecules: each batch pads to
    sizes close to its own, which saves most of the padded pair computation, and the
    molecules come back in the order of their sizes as drawn (``sizes[i]`` for molecule
    ``i``), so that the result is the same i.i.d. sample as unsorted batches would give.
    Returns the molecules and the sampling rate in molecules per second.

    Raises:
        ValueError: ``num < 1``, targets for an unconditional model, or targets, sizes or
            fixed parts of another length.
    """
    from tqdm.auto import tqdm

    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    layout = FeatureLayout(**{k: tuple(v) for k, v in gen.metadata["layout"].items()})
    featurizer = MolecularFeaturizer(layout)
    device = next(gen.parameters()).device
    steps = sampler.get("steps") or gen.sampler.steps
    g = torch.Generator(device=device).manual_seed(seed)
    context = property_context(gen)
    if targets is not None:
        if context is None:
            raise ValueError("targets were given but the model is unconditional")
        targets = np.asarray(targets, dtype=np.float64).reshape(-1, context.width)
        if len(targets) != num:
            raise ValueError(f"{len(targets)} rows of targets for {num} molecules")
        if sizes is None:
            sizes = context.sample_sizes(targets, torch.Generator().manual_seed(seed))
        if guidance is None:
            guidance = guidance_of(gen)
    if sizes is not None and len(sizes) != num:
        raise ValueError(f"{len(sizes)} sizes for {num} molecules")
    if fixed is not None:
        if len(fixed) == 1:
            fixed = list(fixed) * num
        if len(fixed) != num:
            raise ValueError(f"{len(fixed)} fixed parts for {num} molecules")
    t0 = time.perf_counter()
    if fixed is None and sizes is None:
        sizes = gen.draw_sizes(num, generator=g).tolist()
    # completions draw their sizes inside gen.sample (p(n | k)): no sorting there
    order = np.arange(num) if sizes is None else np.argsort(np.asarray(sizes), kind="stable")
    out: list[Molecule | None] = [None] * num
    with tqdm(total=num, desc=f"sampling ({steps} steps)", disable=not progress, unit="mol") as bar:
        for lo in range(0, num, batch_size):
            idx = order[lo : lo + batch_size]
            what: Any = len(idx) if sizes is None else [int(sizes[i]) for i in idx]
            if targets is not None:
                assert context is not None
                sampler["context"] = context.context(targets[idx], device=device)
                sampler["guidance"] = guidance
            if fixed is not None:
                sampler["fixed"] = featurizer.batch([fixed[i] for i in idx]).to(device=device)
            x = gen.sample(what, generator=g, **sampler)
            for i, mol in zip(idx, featurizer.decode(x.to(device="cpu", dtype=torch.float32))):
                out[i] = mol
            bar.update(len(idx))
    rate = num / max(time.perf_counter() - t0, 1e-9)
    assert all(m is not None for m in out)
    return typing.cast(list[Molecule], out), rate


# ---------------------------------------------------------------------------- evaluation
def load_reference(cfg: CanonFlowConfig, *, progress: bool = False) -> Reference:
    """The run's training molecules as the evaluator's reference (cached; not canonicalized)."""
    source = load_data(cfg, progress=progress)
    return Reference(source.train, source.reference_smiles, source.headline_protocols)


def evaluate_molecules(
    molecules: list[Molecule],
    reference: Reference,
    *,
    strain_molecules: int = 200,
    xtb_molecules: int = 0,
    posebusters_molecules: int = 100,
    protocols: Sequence[str] | None = None,
    progress: bool = False,
) -> Any:
    """Score with :func:`symgen.molecules.evaluate.evaluate` against the training molecules.

    ``protocols`` default to every protocol whose extra is installed.
    """
    from symgen.molecules.evaluate import evaluate

    return evaluate(
        molecules,
        protocols=protocols,
        reference=reference.molecules,
        reference_smiles=reference.smiles,
        max_strain_molecules=strain_molecules,
        max_xtb_molecules=xtb_molecules,
        max_posebusters_molecules=posebusters_molecules,
        max_reference_molecules=5000,
        progress=progress,
    )


def save_samples(
    molecules: list[Molecule], report: Any, out_dir: str | Path, *, grid: int = 24
) -> None:
    """Write samples.sdf, samples.xyz, samples.png (first ``grid``) and metrics.json."""
    from rdkit import RDLogger

    from symgen.molecules import io as mio
    from symgen.molecules.pictures import draw_grid_png

    RDLogger.DisableLog("rdApp.*")  # invalid samples are expected; the report counts them
    out_dir = Path(out_dir)
    mio.write_sdf(molecules, out_dir / "samples.sdf")
    mio.write_xyz(molecules, out_dir / "samples.xyz")
    try:
        draw_grid_png(molecules[:grid], out_dir / "samples.png")
    except Exception as err:  # drawing is a convenience; never lose the metrics over it
        eprint(f"could not draw the PNG grid: {err}")
    report.write_json(out_dir / "metrics.json")


def sampling_record(
    gen: CanonicalGenerator, state: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """What ``sampling.json`` records: the sampler settings used and the run's facts."""
    return {
        **extra,
        "checkpoint_step": int(state["step"]),
        "precision": gen.precision,
        **gen.sampler.to_dict(),
    }
