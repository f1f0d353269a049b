"""Shipped pretrained models: registry, checksums, loading without data or network, the
sampling script, and (slow) the model card's numbers reproduced from the shipped file."""

import json
import math
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from symgen import pretrained
from symgen.molecules import canonflow as cf

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "molecules" / "sample.py"
NAME = "qm9-canonflow-quick"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", pretrained.available())
def test_registry_lists_each_shipped_model_with_its_files(name):
    assert NAME in pretrained.available()
    model = pretrained.get_model(name)
    folder = pretrained.INDEX.parent
    for file, digest in (
        (model.file, model.sha256),
        (model.reference, model.reference_sha256),
        (model.reference_smiles, model.reference_smiles_sha256),
    ):
        assert file is not None and (folder / file).is_file()
        assert pretrained.sha256_file(folder / file) == digest
    assert (folder / model.file).stat().st_size <= 20e6  # the size limit per model
    card = pretrained.model_card(name)
    assert model.sha256 in card and "`midi`" in card and "molecule stability" in card
    assert model.score_samples >= 1000 and model.score_steps >= 1
    assert 0.0 < model.scores["midi/molecule_stability"] <= 1.0


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="no pretrained model named 'nope'; available: ") as err:
        pretrained.load_pretrained("nope")
    assert all(name in str(err.value) for name in pretrained.available())


def _copied_registry(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(pretrained.INDEX.parent, folder)
    return folder / pretrained.INDEX.name


def test_checksum_mismatch_refuses_to_load(tmp_path):
    index = _copied_registry(tmp_path)
    model = pretrained.get_model(NAME, index)
    path = index.parent / model.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.ChecksumMismatchError, match="SHA-256 .* registry records"):
        pretrained.load_pretrained(NAME, index=index)
    ref = index.parent / str(model.reference)
    ref.write_bytes(ref.read_bytes() + b"\0")
    with pytest.raises(pretrained.ChecksumMismatchError, match="reference of"):
        pretrained.pretrained_reference(NAME, index=index)
    (index.parent / model.file).unlink()
    with pytest.raises(FileNotFoundError, match="installation is incomplete"):
        pretrained.load_pretrained(NAME, index=index)


def test_loads_and_samples_without_dataset_or_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("loading a pretrained model must not touch data or the network")

    monkeypatch.setattr(cf, "load_data", refuse)
    monkeypatch.setattr(cf, "prepare_data", refuse)
    monkeypatch.setattr(socket, "socket", refuse)
    gen = pretrained.load_pretrained(NAME)
    x = gen.sample(6, steps=2, generator=torch.Generator().manual_seed(0))
    assert x.batch_size == 6 and torch.isfinite(x.pos).all()
    ref = pretrained.pretrained_reference(NAME)
    assert ref is not None and len(ref.molecules) >= 1000
    assert ref.smiles is not None and len(ref.smiles) >= len(ref.molecules)
    assert ref.headline_protocols == ("midi", "edm")


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "HOME": str(tmp_path),
    }
    env["SYMGEN_CACHE"] = str(tmp_path / "empty_cache")  # no dataset anywhere
    return subprocess.run(
        [sys.executable, str(SAMPLE), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )


def test_sample_script_with_a_pretrained_model(tmp_path):
    out = tmp_path / "out"
    proc = _run(
        [
            "--pretrained",
            NAME,
            "--num",
            "8",
            "--steps",
            "3",
            "--protocol",
            "midi",
            "edm",
            "--strain-molecules",
            "0",
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert "midi/molecule_stability" in metrics and "edm/molecule_stability" in metrics
    assert (out / "samples.sdf").is_file()
    bad = _run(["--pretrained", "nope", "--num", "2"], tmp_path)
    assert bad.returncode == 2 and "available: " in bad.stderr
    assert all(name in bad.stderr for name in pretrained.available())


@pytest.mark.slow
@pytest.mark.parametrize("name", pretrained.available())
def test_model_card_numbers_reproduce_from_the_shipped_file(name):
    """Molecules drawn with another seed score like the card says, within sampling error."""
    model = pretrained.get_model(name)
    gen = pretrained.load_pretrained(name)
    ref = pretrained.pretrained_reference(name)
    assert ref is not None
    n = 400
    mols, _ = cf.sample_molecules(gen, n, seed=12345, progress=False)
    protocols = sorted({"midi", *ref.headline_protocols})
    report = cf.evaluate_molecules(
        mols, ref, protocols=protocols, strain_molecules=0, posebusters_molecules=0
    )
    keys = ["midi/validity", *(f"{p}/molecule_stability" for p in protocols)]
    assert all(key in model.scores for key in keys), (keys, sorted(model.scores))
    for key in keys:
        card = model.scores[key]
        se = math.sqrt(card * (1 - card) / n + card * (1 - card) / model.score_samples)
        assert abs(report[key] - card) <= 4 * se + 1e-9, (key, report[key], card)
