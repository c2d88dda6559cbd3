"""MOON-style multimodal item encoder: model, two-stage training, embedding job, recall eval.

Public API::

    train_encoder(dataset, preset, out_dir, seed) -> Path             (training.py)
    embed_catalogue(model_dir, dataset, out_path, version, dim, batch_size) -> EmbedReport
    evaluate_encoder(model_dir, dataset, pairs, ks, dim) -> dict
    load_encoder(model_dir) -> (MoonItemEncoder, ItemFeaturizer)
    embedding_view_name(version) -> "item_moon_embedding_v<version>"
"""
from .configuration import PRESETS, MoonEncoderConfig, TrainSchedule, embedding_view_name, get_preset
from .errors import (CheckpointMismatchError, EmbeddingNaNError, EncoderError, ImageLoadError,
                     UnsupportedDimensionError)
from .modeling import ItemBatch, MoonItemEncoder, normalize_dim

__all__ = ["PRESETS", "MoonEncoderConfig", "TrainSchedule", "embedding_view_name", "get_preset", "EncoderError",
           "CheckpointMismatchError", "EmbeddingNaNError", "ImageLoadError", "UnsupportedDimensionError",
           "ItemBatch", "MoonItemEncoder", "normalize_dim", "train_encoder", "embed_catalogue", "EmbedReport",
           "evaluate_encoder", "load_encoder", "heldout_pairs", "co_engagement_pairs"]


def __getattr__(name):  # heavier modules load on first use
    if name == "train_encoder":
        from .training import train_encoder
        return train_encoder
    if name in ("embed_catalogue", "EmbedReport"):
        from . import embed
        return getattr(embed, name)
    if name == "evaluate_encoder":
        from .evaluate import evaluate_encoder
        return evaluate_encoder
    if name == "load_encoder":
        from .checkpoint import load_encoder
        return load_encoder
    if name in ("heldout_pairs", "co_engagement_pairs"):
        from . import pairs
        return getattr(pairs, name)
    raise AttributeError(name)
