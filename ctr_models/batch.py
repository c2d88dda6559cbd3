"""The batch type every model takes: plain named tensors with documented shapes."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from .inputs import ModelInputs


class BatchShapeError(ValueError):
    """A batch does not match the ModelInputs the model was built for."""


@dataclass
class CTRBatch:
    """One mini-batch of B impressions with history length L and MOON dimension D.

    sparse    name -> int64 [B]      categorical ids (user_id, item_id, gender, ...); 0 = padding/unknown
    dense     name -> float32 [B]    numeric features
    hist      name -> int64 [B, L]   sequence fields (hist_item_id, hist_<attr>); 0 = padding
    hist_len  int64 [B]              number of valid history positions (left-aligned, oldest first)
    hist_lens group -> int64 [B]     the same for each behaviour sequence besides the main one
                                     (ModelInputs.sequence_groups; their fields are in `hist`, ids only)
    item_emb  float32 [B, D] | None  frozen MOON embedding of the target item (zeros if unknown)
    hist_emb  float32 [B, L, D] | None  MOON embeddings of the history items
    label     float32 [B] | None
    shared_history  bool         every row has the same history (one request: one user, many
                                 candidates); models may then compute the history side once
    """

    sparse: dict[str, torch.Tensor]
    hist_len: torch.Tensor
    dense: dict[str, torch.Tensor] = field(default_factory=dict)
    hist: dict[str, torch.Tensor] = field(default_factory=dict)
    hist_lens: dict[str, torch.Tensor] = field(default_factory=dict)
    item_emb: torch.Tensor | None = None
    hist_emb: torch.Tensor | None = None
    label: torch.Tensor | None = None
    shared_history: bool = False

    @property
    def size(self) -> int:
        return int(self.hist_len.shape[0])

    def length(self, group: str = "") -> torch.Tensor:
        """int64 [B] valid positions of a behaviour sequence: hist_len for the main one ("")."""
        return self.hist_lens[group] if group else self.hist_len

    def to(self, device) -> "CTRBatch":
        def move(v):
            if v is None or isinstance(v, bool):
                return v
            if isinstance(v, dict):
                return {k: t.to(device) for k, t in v.items()}
            return v.to(device)

        return CTRBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def validate(self, inputs: ModelInputs) -> None:
        """Raise BatchShapeError naming the first field that does not match `inputs`."""
        b = self.size
        for f in inputs.sparse:
            t = self.sparse.get(f.name)
            if t is None:
                raise BatchShapeError(f"batch lacks sparse field {f.name!r}")
            if t.shape != (b,):
                raise BatchShapeError(f"sparse field {f.name!r} has shape {tuple(t.shape)}, expected ({b},)")
        for name in inputs.dense:
            t = self.dense.get(name)
            if t is None or t.shape != (b,):
                raise BatchShapeError(f"dense field {name!r} missing or not of shape ({b},)")
        for s in inputs.sequences:
            t = self.hist.get(s.name)
            if t is None:
                raise BatchShapeError(f"batch lacks sequence field {s.name!r}")
            if t.dim() != 2 or t.shape[0] != b or t.shape[1] > inputs.max_len:
                raise BatchShapeError(
                    f"sequence field {s.name!r} has shape {tuple(t.shape)}, expected ({b}, <= {inputs.max_len})")
        for group in inputs.sequence_groups:
            t = self.hist_lens.get(group)
            if t is None or t.shape != (b,):
                raise BatchShapeError(f"batch.hist_lens[{group!r}] missing or not of shape ({b},)")
        if inputs.moon_dim is not None:
            for name in ("item_emb", "hist_emb"):
                t = getattr(self, name)
                if t is None:
                    raise BatchShapeError(f"model uses MOON embeddings (d={inputs.moon_dim}) but batch.{name} is None")
                if t.shape[-1] != inputs.moon_dim:
                    raise BatchShapeError(
                        f"batch.{name} has dimension {t.shape[-1]}, the model was trained with d={inputs.moon_dim}")
        lengths = [self.hist_len, *self.hist_lens.values()]
        if self.shared_history and b and not all(bool((t == t[0]).all()) for t in lengths):
            raise BatchShapeError("shared_history=True but the rows' hist_len differ: only a batch whose rows "
                                  "share one history (one user's request) may set it")

    def history_of_first_row(self) -> "CTRBatch":
        """The history side (hist, hist_len(s), hist_emb) of row 0 only, as a batch of size 1.
        With shared_history this is every row's history, so it is computed once, not B times."""
        return CTRBatch(sparse={}, hist_len=self.hist_len[:1], hist={k: v[:1] for k, v in self.hist.items()},
                        hist_lens={k: v[:1] for k, v in self.hist_lens.items()},
                        hist_emb=None if self.hist_emb is None else self.hist_emb[:1])
