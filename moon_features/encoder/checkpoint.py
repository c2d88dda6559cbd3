"""Saving / loading encoder folders and training checkpoints, with clear errors on mismatch."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import torch

from .configuration import MoonEncoderConfig
from .data import ItemFeaturizer
from .errors import CheckpointMismatchError, EncoderError
from .modeling import MoonItemEncoder
from .pretrained import quiet_loading

TRAINER_STATE = "trainer_state.pt"


def save_encoder(model: MoonItemEncoder, tokenizer, path: Path, extra: dict | None = None,
                 trainer_state: dict | None = None) -> Path:
    """A self-contained encoder folder: config.json, weights, tokenizer, optional training.json.
    Written to a temporary sibling and renamed, so a crash never leaves a half-written folder."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if extra is not None:
        (tmp / "training.json").write_text(json.dumps(extra, indent=2, default=str))
    if trainer_state is not None:  # optimizer, queue, RNG: what resuming needs beyond the weights
        torch.save(trainer_state, tmp / TRAINER_STATE)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def load_encoder(path: str | Path, expect: MoonEncoderConfig | None = None):
    """(model, featurizer) from an encoder folder. Raises CheckpointMismatchError when the folder
    is not a MOON encoder, its weights do not fit its config, or it differs from `expect`."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise EncoderError(f"{path} is not an encoder folder (no config.json); train one with "
                           "`moon-features encoder train` or pass the folder it wrote (<out>/model)")
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type != MoonEncoderConfig.model_type:
        raise CheckpointMismatchError(f"{path} holds a {model_type!r} checkpoint, not a MOON item encoder "
                                      f"({MoonEncoderConfig.model_type!r}); point at a folder written by "
                                      "`moon-features encoder train`")
    config = MoonEncoderConfig.from_pretrained(path)
    if expect is not None:
        check_same_architecture(config, expect, path)
    try:
        with quiet_loading():
            model, info = MoonItemEncoder.from_pretrained(path, output_loading_info=True)
    except (RuntimeError, ValueError) as e:
        raise CheckpointMismatchError(f"the weights in {path} do not fit its config.json ({e}); the folder mixes "
                                      "files of different encoders -- re-train or restore it") from e
    bad = [k for k in ("missing_keys", "mismatched_keys") if info.get(k)]
    if bad:
        details = "; ".join(f"{k}: {list(info[k])[:5]}" for k in bad)
        raise CheckpointMismatchError(f"the weights in {path} were written by a different encoder config "
                                      f"({details}); re-train or restore the folder")
    model.apply_freezing()
    model.eval()
    return model, ItemFeaturizer.load(path, config)


def check_same_architecture(found: MoonEncoderConfig, expect: MoonEncoderConfig, where) -> None:
    a, b = found.architecture_signature(), expect.architecture_signature()
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if diff:
        shown = ", ".join(f"{k}: checkpoint={x!r} requested={y!r}" for k, (x, y) in list(diff.items())[:6])
        raise CheckpointMismatchError(f"checkpoint {where} was trained with another config ({shown}). Use a new "
                                      "--out directory, pass --no-resume to start over, or request the same preset.")


def load_trainer_state(path: Path) -> dict:
    # weights_only: a checkpoint is data (tensors, numbers, strings, lists, dicts), never code to run
    try:
        return torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CheckpointMismatchError(f"{path / TRAINER_STATE} is not a plain-data trainer state ({str(e)[:200]}); "
                                      "it was written by another program or is damaged: pass --no-resume") from None
