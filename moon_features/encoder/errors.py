"""Named errors a user of the encoder can cause; each message says what to do next."""
from __future__ import annotations

from ..errors import MoonFeaturesError


class EncoderError(MoonFeaturesError):
    """Base class for every error raised by moon_features.encoder."""


class UnsupportedDimensionError(EncoderError, ValueError):
    def __init__(self, dim: int, supported: list[int]):
        super().__init__(
            f"embedding dimension {dim} is not served by this encoder; it serves {sorted(supported)} "
            f"(its Matryoshka heads plus its content part). Pass one of those with --dim, or train an "
            f"encoder whose `embedding_dims` (+ `content_dims`) gives {dim}.")
        self.dim, self.supported = dim, list(supported)


class CheckpointMismatchError(EncoderError):
    """A checkpoint was written by a different configuration than the one asked for."""


class EmbeddingNaNError(EncoderError):
    def __init__(self, item_ids: list[int]):
        shown = ", ".join(str(i) for i in item_ids[:20])
        more = f" (and {len(item_ids) - 20} more)" if len(item_ids) > 20 else ""
        super().__init__(
            f"{len(item_ids)} item embedding(s) contain NaN: item_id {shown}{more}. Nothing was written. "
            "The encoder weights or these items' inputs are broken: re-train or re-load the checkpoint, "
            "and check these items' titles and images.")
        self.item_ids = list(item_ids)


class ImageLoadError(EncoderError):
    def __init__(self, item_id: int, path, reason: str):
        super().__init__(f"item {item_id}: cannot read image {path}: {reason}")
        self.item_id, self.path, self.reason = item_id, path, reason
