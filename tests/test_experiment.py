"""Experiments from YAML files: the recipes in experiments/ load, and mistakes are named errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from ctr_models.trainer import TrainerConfig
from moon_features.cli import main
from moon_features.training.experiment import Experiment, ExperimentError

RECIPES = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("name", ["din", "deepfm"])
def test_repo_recipes_load(name):
    exp = Experiment.load(RECIPES / f"{name}.yaml")
    assert exp.model == name and exp.use_moon is True
    assert exp.trainer_config() == TrainerConfig(**exp.trainer)  # everything else: the class defaults


def test_file_values_then_flags_override_defaults(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("model: deepfm\nuse_moon: false\nmodel_config: {embed_dim: 8}\ntrainer: {epochs: 3, lr: 0.01}\n")
    exp = Experiment.load(f)
    assert (exp.model, exp.use_moon, exp.model_config) == ("deepfm", False, {"embed_dim": 8})
    cfg = exp.trainer_config(epochs=7, lr=None)
    assert (cfg.epochs, cfg.lr, cfg.batch_size) == (7, 0.01, TrainerConfig().batch_size)


@pytest.mark.parametrize("text, match", [
    ("model: gbdt\n", "unknown model 'gbdt'"),
    ("model: din\nmodel_config: {embed_dims: 8}\n", r"DINConfig has no option\(s\) \['embed_dims'\]"),
    ("model: din\ntrainer: {epoch: 3}\n", r"TrainerConfig has no option\(s\) \['epoch'\]"),
    ("model: din\nmodel_config: {use_moon: true}\n", "top-level key"),
    ("modle: din\n", r"unknown key\(s\) \['modle'\]"),
    ("model: [din\n", "not valid YAML"),
])
def test_bad_experiment_is_a_named_error(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ExperimentError, match=match):
        Experiment.load(f)


def test_cli_reports_a_bad_experiment_without_traceback(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("model: din\ntrainer: {epoch: 3}\n")
    code = main(["train", "--experiment", str(f), "--repo", str(tmp_path), "--rows", str(tmp_path / "rows.parquet"),
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "TrainerConfig has no option(s) ['epoch']" in capsys.readouterr().err
