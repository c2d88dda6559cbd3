"""DIN's per-item work done once per item, not once per request: the rows of a projected item view.

Every part of DIN that reads one item (a candidate or a history item) and not the user is a
function of that item's features alone, so it can be computed when the item is materialized and
read at serving time. A row holds, for the artifact's folded copy (serving_graph.fold_dice):

    k         [d]   the item in the attention's layout: its sequence fields' embeddings + MOON projection
    c         [h]   the attention's first layer as a target:       bias + k W_target  (first_layer_terms)
    kk        [h]   the attention's first layer as a history item: k W_key
    u         [H]   the DNN's first layer over the item's own inputs: item fields, MOON projection, item dense
    unit      [D]   the MOON vector over its norm (cosine similarities; zeros stay zeros)
    heads     [H*d] the similarity heads' unit projections of the MOON vector (DIN's sim_heads)
    complete  [1]   1.0 if the store held both the item's profile and its embedding

A request then pays only what needs the pair or the user: (q * k) W_pair over the (candidate,
history item) pairs, the attention MLP, and the DNN over [interest, q * interest, similarity
histogram] plus the user's own first-layer part, once. `fingerprint` names the weights a row
set was computed with; a row set of other weights must never be read (the serving side checks).
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from .serving_graph import (FoldedDice, attention_rest, check_graph_config, first_layer_terms, fold_dice,
                            similarity_heads, similarity_histogram)

ROW_PARTS = ("k", "c", "kk", "u", "unit", "heads", "complete")


def fingerprint(model: nn.Module) -> str:
    """sha256 (first 16 hex) of the model's type and every weight and buffer, in name order."""
    h = hashlib.sha256(model.config.model_type.encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class ItemProjection(nn.Module):
    """rows(): a DIN's per-item rows; forward(): one request's logits from those rows.

    item_dense: the dense features that belong to the item (the rest are the request's, e.g. the
    user's); they enter the DNN's first layer through the item's row."""

    def __init__(self, model: nn.Module, item_dense: tuple[str, ...] = ()):
        super().__init__()
        check_graph_config(model, types=("din",))
        # its rows hold the main sequence's attention terms only; a further sequence's attention is not projected
        model.inputs.require_one_sequence("the projected item view of DIN")
        self.model = m = fold_dice(model)
        self.fingerprint = fingerprint(model)
        emb, inputs = m.embedding, model.inputs
        self.item_fields = [n for n in emb.fields if inputs.sparse_field(n).group == "item"]
        self.request_fields = [n for n in emb.fields if n not in self.item_fields]
        self.item_dense = [n for n in inputs.dense if n in item_dense]
        self.request_dense = [n for n in inputs.dense if n not in item_dense]
        bias, w_target, w_key, w_pair = first_layer_terms(m.attention)
        for name, t in (("att_bias", bias), ("w_target", w_target), ("w_key", w_key), ("w_pair", w_pair)):
            self.register_buffer(name, t.detach().clone())
        act, lin = m.attention.first_act, m.attention.rest[0]
        if isinstance(act, FoldedDice):  # Dice(x) W^T = (y * (alpha / s + keep / s * sigmoid(y + t))) W^T, y = x * s
            for name, t in (("dice_shift", act.shift), ("dice_alpha", act.alpha / act.scale),
                            ("dice_keep", act.keep / act.scale), ("lin_w", lin.weight.t()), ("lin_b", lin.bias)):
                self.register_buffer(name, t.detach().clone().contiguous())
        item_cols, request_cols, rest_cols = self._dnn_columns(emb, inputs)
        w1 = m.dnn[0].weight.detach()
        self.register_buffer("w_item", w1[:, item_cols].t().contiguous())
        self.register_buffer("w_request", w1[:, request_cols].t().contiguous())
        self.register_buffer("w_rest", w1[:, rest_cols].t().contiguous())
        self.register_buffer("b1", m.dnn[0].bias.detach().clone())
        d, h = emb.item_dim, bias.shape[0]
        heads = m.sim_heads.proj.out_features if m.sim_heads is not None else 0
        unit = inputs.moon_dim if emb.moon is not None else 0
        self.widths = dict(zip(ROW_PARTS, (d, h, h, w1.shape[0], unit, heads, 1)))
        self.width = sum(self.widths.values())

    def _dnn_columns(self, emb, inputs) -> tuple[list[int], list[int], list[int]]:
        """Columns of the DNN's first layer fed by the item, by the request, and per pair (DIN.forward's order)."""
        cfg, at, cols = self.model.config, 0, {"item": [], "request": [], "rest": []}

        def take(group: str, width: int) -> None:
            nonlocal at
            cols[group] += range(at, at + width)
            at += width

        for n in emb.fields:
            take("item" if n in self.item_fields else "request", emb.dim)
        take("item", emb.moon_dim)
        take("rest", emb.item_dim * (2 if cfg.interest_product else 1))
        take("rest", self.model.sim_hist.out_dim if self.model.sim_hist is not None else 0)
        take("rest", self.model.sim_heads.out_dim if self.model.sim_heads is not None else 0)
        for n in inputs.dense:
            take("item" if n in self.item_dense else "request", 1)
        return cols["item"], cols["request"], cols["rest"]

    # --- at materialization --------------------------------------------------------------------
    @torch.inference_mode()
    def rows(self, sparse: dict[str, torch.Tensor], dense: dict[str, torch.Tensor],
             item_emb: torch.Tensor | None, complete: torch.Tensor) -> torch.Tensor:
        """float32 [n, width] for n items: sparse holds the item fields' ids [n] (as a candidate
        row has them), dense the item dense features [n], item_emb [n, D] (zeros if unknown)."""
        emb = self.model.embedding
        looked = {n: emb.lookup(n, sparse[n]) for n in self.item_fields}
        proj = [emb.moon(item_emb)] if emb.moon is not None else []
        k = torch.cat([looked[s.target] for s in emb.sequences] + proj, dim=1)
        c = torch.addmm(self.att_bias, k, self.w_target)
        kk = k @ self.w_key
        x = torch.cat([looked[n] for n in self.item_fields] + proj + [dense[n].unsqueeze(1) for n in self.item_dense], 1)
        u = x @ self.w_item
        parts = [k, c, kk, u]
        if emb.moon is not None:
            parts.append(item_emb / item_emb.norm(dim=-1, keepdim=True).clamp(min=1e-8))
        if self.model.sim_heads is not None:
            parts.append(self.model.sim_heads.unit(item_emb).flatten(1))
        return torch.cat(parts + [complete.to(torch.float32).unsqueeze(1)], dim=1)

    def split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(ROW_PARTS, rows.split(list(self.widths.values()), dim=1)))

    # --- per request ---------------------------------------------------------------------------
    def _pair_mlp(self, y: torch.Tensor) -> torch.Tensor:
        """The attention logits [B, n] from the first layer's y [B, n, h]; with Dice, in place over
        y's one copy (the largest tensor of a request: four passes and one product)."""
        att = self.model.attention
        if not isinstance(att.first_act, FoldedDice):
            return attention_rest(att, y)
        gate = torch.add(y, self.dice_shift).sigmoid_()
        gate.mul_(self.dice_keep).add_(self.dice_alpha).mul_(y)
        x = torch.matmul(gate, self.lin_w) + self.lin_b  # no reshape: the ONNX export keeps B and n dynamic
        for layer in list(att.rest)[1:]:
            x = layer(x)
        return x.squeeze(-1)

    @torch.inference_mode()
    def request_part(self, sparse: dict[str, torch.Tensor], dense: dict[str, torch.Tensor]) -> torch.Tensor:
        """[1, H]: the DNN first layer's bias plus the request's fields (user, context), once."""
        emb = self.model.embedding
        x = [emb.lookup(n, sparse[n]) for n in self.request_fields] + [dense[n].unsqueeze(1) for n in self.request_dense]
        return torch.addmm(self.b1, torch.cat(x, dim=1), self.w_request) if x else self.b1.unsqueeze(0)

    @torch.inference_mode()
    def forward(self, request: torch.Tensor, cand: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        """logits [B] from request_part [1, H], the candidates' rows [B, W] and the n valid history rows [n, W]."""
        m, c, h = self.model, self.split(cand), self.split(hist)
        q, k = c["k"], h["k"]
        y = (q.unsqueeze(1) * k.unsqueeze(0)) @ self.w_pair           # [B, n, h]: the per-pair term
        y += c["c"].unsqueeze(1)
        y += h["kk"].unsqueeze(0)
        logits = self._pair_mlp(y)
        sim = c["unit"] @ h["unit"].t() if (m.sim_hist is not None or m.fusion is not None) else None
        if m.fusion is not None:
            logits = logits + m.fusion(sim)
        weights = torch.softmax(logits, dim=1) if m.attention.normalization == "softmax" else logits
        interest = weights @ k
        rest = [interest] + ([q * interest] if m.config.interest_product else [])
        if m.sim_hist is not None:
            rest.append(similarity_histogram(m.sim_hist, sim))
        if m.sim_heads is not None:
            shape = (m.sim_heads.heads, m.sim_heads.head_dim)  # unflatten, not flatten: n may be 0
            rest.append(similarity_heads(m.sim_heads, c["heads"].unflatten(1, shape), h["heads"].unflatten(1, shape)))
        x = torch.addmm(c["u"] + request, torch.cat(rest, dim=1), self.w_rest)
        for layer in list(m.dnn)[1:]:
            x = layer(x)
        return x.squeeze(1)
