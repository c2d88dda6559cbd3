"""What a CTR model consumes: the fields, their vocabularies and dimensions.

This is the model-side view of moon_features' FeatureSpec (which derives it with
`FeatureSpec.model_inputs()`); ctr_models never imports moon_features.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .config import ConfigError


@dataclass(frozen=True)
class SparseField:
    """A categorical field looked up in an embedding table. Index 0 is padding / unknown."""

    name: str
    vocab_size: int
    group: str = "item"  # "user" | "item" | "context"


@dataclass(frozen=True)
class SequenceField:
    """A behaviour-sequence field; it shares the embedding table of the sparse field `target`.

    e.g. SequenceField("hist_item_id", target="item_id"). `group` names the behaviour sequence
    it belongs to: "" is the main one (its length is the batch's hist_len, its items have
    hist_emb); another (e.g. "purchase") has its own length, batch.hist_lens[group], and ids only.
    """

    name: str
    target: str
    group: str = ""


def length_name(group: str) -> str:
    """The array / feature name of a sequence group's lengths: hist_len for the main one."""
    return f"hist_{group}_len" if group else "hist_len"


class SequenceGroupsUnsupportedError(ConfigError):
    """A model (or backend) that reads one behaviour sequence was given inputs with several."""


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

    @property
    def sequence_groups(self) -> tuple[str, ...]:
        """The behaviour sequences besides the main one, in order (empty: one sequence)."""
        return tuple(dict.fromkeys(s.group for s in self.sequences if s.group))

    def group_sequences(self, group: str) -> tuple[SequenceField, ...]:
        return tuple(s for s in self.sequences if s.group == group)

    def require_one_sequence(self, what: str) -> None:
        """Raise SequenceGroupsUnsupportedError if these inputs have sequences besides the main one."""
        if self.sequence_groups:
            raise SequenceGroupsUnsupportedError(
                f"{what} reads one behaviour sequence, but these inputs have the extra sequence(s) "
                f"{list(self.sequence_groups)}; use DeepFM or DIN (torch, their ONNX graphs or the TF mirror read "
                "each sequence), or build the repository without `features build --sequence`")

    def to_dict(self) -> dict:
        d = asdict(self)
        for s in d["sequences"]:  # the main sequence's fields keep the form written before groups existed
            if not s["group"]:
                del s["group"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelInputs":
        return cls(
            sparse=tuple(SparseField(**f) for f in d["sparse"]),
            dense=tuple(d.get("dense", ())),
            sequences=tuple(SequenceField(**f) for f in d.get("sequences", ())),
            max_len=d.get("max_len", 50),
            moon_dim=d.get("moon_dim"),
        )
