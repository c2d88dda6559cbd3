"""What a CTR model consumes: the fields, their vocabularies and dimensions.

This is the model-side view of moon_features' FeatureSpec (which derives it with
`FeatureSpec.model_inputs()`); ctr_models never imports moon_features.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SparseField:
    """A categorical field looked up in an embedding table. Index 0 is padding / unknown."""

    name: str
    vocab_size: int
    group: str = "item"  # "user" | "item" | "context"


@dataclass(frozen=True)
class SequenceField:
    """A behaviour-sequence field; it shares the embedding table of the sparse field `target`.

    e.g. SequenceField("hist_item_id", target="item_id").
    """

    name: str
    target: str


@dataclass(frozen=True)
class ModelInputs:
    sparse: tuple[SparseField, ...]
    dense: tuple[str, ...] = ()
    sequences: tuple[SequenceField, ...] = ()
    max_len: int = 50
    moon_dim: int | None = None  # dimension of the frozen MOON embeddings, None = not used

    def sparse_field(self, name: str) -> SparseField:
        for f in self.sparse:
            if f.name == name:
                return f
        raise KeyError(f"no sparse field {name!r}; have {[f.name for f in self.sparse]}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelInputs":
        return cls(
            sparse=tuple(SparseField(**f) for f in d["sparse"]),
            dense=tuple(d.get("dense", ())),
            sequences=tuple(SequenceField(**f) for f in d.get("sequences", ())),
            max_len=d.get("max_len", 50),
            moon_dim=d.get("moon_dim"),
        )
