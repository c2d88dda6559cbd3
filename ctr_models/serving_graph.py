"""One request as a flat graph of plain tensors: the form ONNX export and onnxruntime run.

A serving request is one user and B candidates sharing one history (CTRBatch.shared_history).
Its graph takes that history already cut to its n valid items, so it needs no mask, no
data-dependent slicing and no padding work, and every shape is a graph dimension (B and n):

    <sparse field>   int64   [B]     every ModelInputs.sparse field, user fields repeated per row
    <dense field>    float32 [B]     every ModelInputs.dense feature
    <sequence field> int64   [n]     every ModelInputs.sequences field: the n valid history items,
                                     oldest first (n <= max_len, n = 0 allowed); a field of a
                                     sequence group besides the main one has its own
                                     n_<group> valid items
    item_emb         float32 [B, D]  MOON vectors of the candidates (models with moon_dim only)
    hist_emb         float32 [n, D]  MOON vectors of the history items (same)
  ->
    logit            float32 [B]
    score            float32 [B]     sigmoid(logit)

The graphs reuse the trained model's own submodules (embedding tables, attention, MLPs) and
follow its forward for a shared history step by step; `GRAPH_CONFIG_FIELDS` lists the config
options each graph implements, and a model whose config has another option is refused (a test
keeps the lists in step with the configs). `bucketize` and `scatter_add_` (SimTier's histogram)
have no ONNX form, so the histogram is counted with comparisons here, to the same values.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from .config import ConfigError
from .inputs import ModelInputs
from .layers import Dice, cosine_similarity, safe_ids

# Config options each graph follows; any other field of the model's config is an unknown option.
GRAPH_CONFIG_FIELDS = {
    "din": {"embed_dim", "use_item_id", "use_moon", "moon_proj_dim", "sim_histogram", "sim_bins",
            "fuse_similarity", "sim_heads", "sim_head_dim", "attention_hidden", "attention_act",
            "attention_norm", "interest_product", "dnn_hidden", "dnn_act", "dropout", "item_field", "init_std"},
    "deepfm": {"embed_dim", "use_item_id", "use_moon", "sequence_pooling", "sim_histogram", "sim_bins",
               "dnn_hidden", "dnn_act", "dropout", "item_field", "init_std"},
}


def graph_input_names(inputs: ModelInputs) -> list[str]:
    names = [f.name for f in inputs.sparse] + list(inputs.dense) + [s.name for s in inputs.sequences]
    return names + (["item_emb", "hist_emb"] if inputs.moon_dim is not None else [])


def dynamic_axes(inputs: ModelInputs) -> dict[str, dict[int, str]]:
    axes = {f.name: {0: "batch"} for f in inputs.sparse}
    axes.update({n: {0: "batch"} for n in inputs.dense})
    axes.update({s.name: {0: f"history_{s.group}" if s.group else "history"} for s in inputs.sequences})
    if inputs.moon_dim is not None:
        axes.update(item_emb={0: "batch"}, hist_emb={0: "history"})
    return {**axes, "logit": {0: "batch"}, "score": {0: "batch"}}


def example_inputs(inputs: ModelInputs, batch: int = 3, history: int = 2) -> tuple[torch.Tensor, ...]:
    """Tensors of the graph's input layout (ids 1, unit-ish vectors), e.g. to trace it."""
    g = torch.Generator().manual_seed(0)
    out = [torch.ones(batch, dtype=torch.int64) for _ in inputs.sparse]
    out += [torch.zeros(batch) for _ in inputs.dense]
    # a sequence group's own length differs from the main one's, so the tracer keeps them apart
    out += [torch.ones(history + (1 if s.group else 0), dtype=torch.int64) for s in inputs.sequences]
    if inputs.moon_dim is not None:
        out += [torch.randn(batch, inputs.moon_dim, generator=g), torch.randn(history, inputs.moon_dim, generator=g)]
    return tuple(out)


def similarity_histogram(hist: nn.Module, sim: torch.Tensor) -> torch.Tensor:
    """SimTierHistogram over sim [B, n] (every position valid), without bucketize / scatter:
    bucketize's tier t holds the values in (e_{t-1}, e_t], so its count is #(> e_{t-1}) - #(> e_t),
    with #(> e_{-1}) = n and #(> e_last) = 0: one comparison per inner edge, no per-tier pass."""
    n = torch.ones_like(sim).sum(dim=1, keepdim=True)                   # [B, 1]
    above = (sim.clamp(-1.0, 1.0).unsqueeze(-1) > hist.edges).to(sim.dtype).sum(dim=1)  # [B, bins - 1]
    counts = torch.cat([n, above], dim=1) - torch.cat([above, torch.zeros_like(n)], dim=1)
    n = n.clamp(min=1.0)
    frac = counts / n
    mean = sim.sum(dim=1, keepdim=True) / n
    # a -1 column keeps the max defined for n = 0 (then replaced by 0, as the model does)
    mx = torch.cat([sim, torch.full_like(mean, -1.0)], dim=1).max(dim=1, keepdim=True).values
    mx = torch.where(torch.ones_like(sim[:1]).sum() > 0, mx, torch.zeros_like(mx))
    return torch.cat([frac, mean, mx], dim=1)


def similarity_heads(heads: nn.Module, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """SimilarityHeads.pool over one history of n valid items: unit heads q [B, H, d], k [n, H, d]
    -> [B, 2H] (per head the mean and the max cosine; 0 for n = 0). One [B, d] x [d, n] product
    per head, batched over the heads (onnxruntime's Einsum fails on an empty history)."""
    sim = q.transpose(0, 1) @ k.permute(1, 2, 0)                                # [H, B, n]
    # constants of a data shape are built by arithmetic on data: the exporter would freeze a
    # ones_like / full_like to the traced shape
    n = (sim[:1, :1] * 0.0 + 1.0).sum()
    mean = sim.sum(dim=2) / n.clamp(min=1.0)                                     # [H, B]
    # a -1 column keeps the max defined for n = 0 (then replaced by 0, as the model does)
    mx = torch.cat([sim, (mean * 0.0 - 1.0).unsqueeze(2)], dim=2).max(dim=2).values
    mx = torch.where(n > 0, mx, mx * 0.0)
    return torch.cat([mean, mx], dim=0).t()


class FoldedDice(nn.Module):
    """Dice at inference with its batch norm folded into one scale and shift per unit:
    x * (alpha + sigmoid(x * s + t) * (1 - alpha)), s = 1 / sqrt(var + eps), t = -mean * s.
    Elementwise on the last axis, so the exporter needs no channel size (BatchNorm does)."""

    def __init__(self, dice: Dice):
        super().__init__()
        bn = dice.bn
        scale = 1.0 / torch.sqrt(bn.running_var + bn.eps)
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", (-bn.running_mean * scale).detach().clone())
        self.register_buffer("alpha", dice.alpha.detach().clone())
        self.register_buffer("keep", (1 - dice.alpha).detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.alpha + torch.sigmoid(x * self.scale + self.shift) * self.keep)


def fold_dice(model: nn.Module) -> nn.Module:
    """A copy of the model (eval mode) with every Dice replaced by its FoldedDice."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Dice):
                setattr(parent, name, FoldedDice(child))
    return model


def check_graph_config(model: nn.Module, types: tuple[str, ...] | None = None) -> None:
    """ConfigError unless the model's type (one of `types`, default: any with a graph) and every
    option of its config are ones the serving graphs implement."""
    name = model.config.model_type
    known = GRAPH_CONFIG_FIELDS.get(name) if name in (types or GRAPH_CONFIG_FIELDS) else None
    if known is None:
        raise ConfigError(f"model {name!r} has no serving graph here; known: {sorted(types or GRAPH_CONFIG_FIELDS)}")
    unknown = sorted({f.name for f in dataclasses.fields(model.config)} - known)
    if unknown:
        raise ConfigError(f"the {name} serving graph does not implement the config options {unknown}; "
                          "add them to ctr_models/serving_graph.py before exporting")


class _Graph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        check_graph_config(model)
        self.model = fold_dice(model)  # a copy: the caller's model is left as it is
        self.inputs: ModelInputs = model.inputs
        self.input_names = graph_input_names(model.inputs)

    def _split(self, tensors):
        x = dict(zip(self.input_names, tensors))
        emb = self.model.embedding
        sparse = {n: emb.lookup(n, x[n]) for n in emb.fields}
        hist = {s.name: emb.lookup(s.target, x[s.name])
                for s in [*emb.sequences, *(s for group in emb.groups.values() for s in group)]}
        dense = [x[n].unsqueeze(1) for n in self.inputs.dense]
        return x, sparse, hist, dense

    @staticmethod
    def _sim(x) -> torch.Tensor:
        hist_emb = x["hist_emb"].unsqueeze(0)
        return cosine_similarity(x["item_emb"], hist_emb, torch.ones_like(hist_emb[..., 0], dtype=torch.bool))


def attention_logits(att: nn.Module, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """TargetAttention's logits [B, n] for targets q [B, d] over one history k [n, d].

    As shared_first_layer: x = W_p (q * k) + c(q) + W' k, but with broadcasting instead of its
    reshape (the exporter would freeze the reshape's B and n to the traced ones). With Dice after
    it, its folded batch norm z = x * s + t moves into the weights, and Dice(x) = x * (alpha +
    keep * sigmoid(z)) into the next linear layer: with y = x * s,
        W1 Dice(x) = (W1 alpha / s) y + (W1 keep / s) (y * sigmoid(y + t)),
    five passes over the [B, n, h] activations instead of eight (the graph's largest tensors)."""
    bias, w_target, w_key, w_pair = first_layer_terms(att)
    c = torch.addmm(bias, q, w_target)                                   # [B, h]: per target
    kk = k @ w_key                                                       # [n, h]: per history item
    y = (q.unsqueeze(1) * k.unsqueeze(0)) @ w_pair + c.unsqueeze(1) + kk.unsqueeze(0)
    return attention_rest(att, y)


def first_layer_terms(att: nn.Module) -> tuple[torch.Tensor, ...]:
    """(bias [h], W_target [d, h], W_key [d, h], W_pair [d, h]) of the attention's first layer,
    scaled by its folded Dice's s: y = bias + q W_target + k W_key + (q * k) W_pair."""
    w_q, w_k, w_d, w_p = att.first.weight.split(att.dim, dim=1)
    act = att.first_act
    s = act.scale if isinstance(act, FoldedDice) else torch.ones_like(att.first.bias)
    return att.first.bias * s, (w_q + w_d).t() * s, (w_k - w_d).t() * s, w_p.t() * s


def attention_rest(att: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The attention logits [B, n] from first_layer_terms' y [B, n, h] (see attention_logits)."""
    act, lin = att.first_act, att.rest[0]
    if not isinstance(act, FoldedDice):
        return att.rest(act(y)).squeeze(-1)
    gated = y * torch.sigmoid(y + act.shift)
    h = y @ (lin.weight * (act.alpha / act.scale)).t() + gated @ (lin.weight * (act.keep / act.scale)).t() + lin.bias
    for layer in list(att.rest)[1:]:
        h = layer(h)
    return h.squeeze(-1)


class DINGraph(_Graph):
    """DIN.forward for one shared history of n valid items (attention: shared_first_layer)."""

    def forward(self, *tensors: torch.Tensor):
        m, cfg = self.model, self.model.config
        x, sparse, hist, dense = self._split(tensors)
        emb = m.embedding
        q = [sparse[s.target] for s in emb.sequences]
        k = [hist[s.name] for s in emb.sequences]
        if emb.moon is not None:
            q.append(emb.moon(x["item_emb"]))
            k.append(emb.moon(x["hist_emb"]))
        q, k = torch.cat(q, dim=-1), torch.cat(k, dim=-1)          # [B, d], [n, d]
        sim = self._sim(x) if (m.sim_hist is not None or m.fusion is not None) else None
        logits = attention_logits(m.attention, q, k)  # [B, n]
        if m.fusion is not None:
            logits = logits + m.fusion(sim)
        weights = torch.softmax(logits, dim=1) if m.attention.normalization == "softmax" else logits
        interest = weights @ k
        parts = [sparse[n] for n in emb.fields]
        if emb.moon is not None:
            parts.append(q[:, q.shape[1] - emb.moon_dim:])
        parts.append(interest)
        if getattr(cfg, "interest_product", False):
            parts.append(q * interest)
        if m.sim_hist is not None:
            parts.append(similarity_histogram(m.sim_hist, sim))
        if m.sim_heads is not None:
            h = m.sim_heads
            parts.append(similarity_heads(h, h.unit(x["item_emb"]), h.unit(x["hist_emb"])))
        parts += self._group_interests(sparse, hist)
        logit = m.dnn(torch.cat(parts + dense, dim=1)).squeeze(1)
        return logit, torch.sigmoid(logit)

    def _group_interests(self, sparse: dict, hist: dict) -> list[torch.Tensor]:
        """DIN._group_interests over each further sequence's own n_<group> valid items."""
        m, out = self.model, []
        for group, att in m.group_attention.items():
            seqs = m.embedding.groups[group]
            q = torch.cat([sparse[s.target] for s in seqs], dim=-1)
            k = torch.cat([hist[s.name] for s in seqs], dim=-1)
            logits = attention_logits(att, q, k)
            weights = torch.softmax(logits, dim=1) if att.normalization == "softmax" else logits
            interest = weights @ k
            out += [interest, q * interest] if getattr(m.config, "interest_product", False) else [interest]
        return out


class DeepFMGraph(_Graph):
    """DeepFM.forward for one shared history of n valid items (pooled once, broadcast)."""

    def forward(self, *tensors: torch.Tensor):
        m = self.model
        x, sparse, hist, dense = self._split(tensors)
        emb = m.embedding
        rows = x[self.inputs.sparse[0].name].unsqueeze(1).to(torch.float32)  # [B, 1]: the batch axis
        fields = [sparse[n] for n in emb.fields]
        extra = []

        def pooled(v: torch.Tensor) -> torch.Tensor:  # mean over the n items, [1, k] -> [B, k]
            n = torch.ones_like(v[:, :1]).sum().clamp(min=1.0)
            return (v.sum(dim=0, keepdim=True) / n) * torch.ones_like(rows)

        if m.use_sequences:
            fields += [pooled(hist[s.name]) for s in emb.sequences]
            fields += [pooled(hist[s.name]) for group in emb.groups.values() for s in group]  # each over its own n
        if m.config.use_moon:
            fields.append(emb.moon(x["item_emb"]))
            fields.append(pooled(emb.moon(x["hist_emb"])))
            if m.sim_hist is not None:
                extra.append(similarity_histogram(m.sim_hist, self._sim(x)))
        stacked = torch.stack(fields, dim=1)  # [B, F, k]
        logit = m.bias + sum(m.linear[n](safe_ids(x[n], emb.vocab[n])).squeeze(1) for n in emb.fields)
        if m.dense_linear is not None:
            logit = logit + m.dense_linear(torch.cat(dense, dim=1)).squeeze(1)
        logit = logit + m.fm(stacked) + m.dnn(torch.cat([stacked.flatten(1)] + dense + extra, dim=1)).squeeze(1)
        return logit, torch.sigmoid(logit)


GRAPHS = {"din": DINGraph, "deepfm": DeepFMGraph}


def serving_graph(model: nn.Module) -> _Graph:
    """The model's shared-history serving graph (a module over graph_input_names' tensors)."""
    cls = GRAPHS.get(model.config.model_type)
    if cls is None:
        raise ConfigError(f"model {model.config.model_type!r} has no serving graph; known: {sorted(GRAPHS)}")
    return cls(model)
