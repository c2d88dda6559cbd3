"""MoonItemEncoder: image + title + categorical attributes -> one L2-normalised item embedding.

Read top to bottom: towers turn each modality into tokens, a fusion transformer with
modality experts mixes them, mean pooling makes one vector, a Matryoshka head makes every
prefix in `config.embedding_dims` a usable embedding. The same fusion stack run on one
modality's tokens only gives the image-only / text-only query embeddings that MOON's
inter-product loss and image-based search need.

Backbone outputs are split from the rest ("raw tokens") so that training can cache the
outputs of frozen pretrained towers once per run instead of recomputing them every step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, BertModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration import MoonEncoderConfig
from .efficientnet_lite import load_imagenet_weights
from .output import EmbeddingOutput
from .pretrained import minilm_path, quiet_loading
from .towers import BertTextTower, ClipTextTower, ClipVisionTower, EfficientNetTower, ViTPatchTower

IMAGE, TEXT, ATTRIBUTE = 0, 1, 2
MODES = ("multimodal", "image", "text")


@dataclass
class ItemBatch:
    """Model inputs for B items. Give either pixel_values or image_raw (cached backbone tokens),
    and either input_ids or text_raw.

    pixel_values   (B, 3, S, S) float, normalised     image_raw (B, P, C_img) backbone tokens
    has_image      (B,) bool: False -> image tokens are masked out (text-only embedding)
    input_ids      (B, L) long; attention_mask (B, L) long   text_raw (B, L, C_txt)
    attribute_ids  (B, A) long, 0 = padding
    colour_raw     (B, bins^3) colour histogram (cached); computed from pixel_values when None
    """

    has_image: torch.Tensor
    attention_mask: torch.Tensor
    attribute_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_raw: torch.Tensor | None = None
    input_ids: torch.Tensor | None = None
    text_raw: torch.Tensor | None = None
    colour_raw: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.has_image.shape[0]


@dataclass
class MoonEncoderOutput(ModelOutput):
    """Un-normalised vectors of size max(embedding_dims); use `normalize_dim` for a served dim."""

    multimodal: torch.Tensor | None = None
    image: torch.Tensor | None = None
    text: torch.Tensor | None = None


def normalize_dim(z: torch.Tensor, dim: int) -> torch.Tensor:
    """The Matryoshka embedding of size `dim`: the first `dim` coordinates, L2-normalised."""
    return F.normalize(z[..., :dim], dim=-1)


def colour_histogram(pixel_values: torch.Tensor, config: MoonEncoderConfig) -> torch.Tensor:
    """(B, 3, S, S) normalised pixels -> (B, bins^3) joint RGB histogram, fractions of the image."""
    bins = config.colour_bins
    mean = torch.tensor(config.image_mean, dtype=pixel_values.dtype).view(1, 3, 1, 1)
    std = torch.tensor(config.image_std, dtype=pixel_values.dtype).view(1, 3, 1, 1)
    level = ((pixel_values * std + mean).clamp(0.0, 1.0 - 1e-6) * bins).long()
    joint = (level[:, 0] * bins + level[:, 1]) * bins + level[:, 2]
    hist = torch.zeros(pixel_values.shape[0], bins ** 3, dtype=torch.float32)
    hist.scatter_add_(1, joint.flatten(1), torch.ones(joint.flatten(1).shape))
    return hist / joint[0].numel()


class ExpertFeedForward(nn.Module):
    """MOON2.0-style modality experts: each token goes through the shared expert and the
    expert of its own modality, so no modality's gradients dominate a single FFN."""

    def __init__(self, hidden: int, multiplier: int, dropout: float):
        super().__init__()

        def ffn():
            return nn.Sequential(nn.Linear(hidden, hidden * multiplier), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden * multiplier, hidden))

        self.shared = ffn()
        self.experts = nn.ModuleList([ffn() for _ in range(3)])

    def forward(self, x: torch.Tensor, modality: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, H); modality (T,) the modality of each position; valid (B, T) True for real
        tokens. Padding tokens are skipped (zeros out): they are masked out of attention and
        pooling anyway, and titles are short, so this halves the fusion's work."""
        if valid is None:
            valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        flat = x[valid]                                   # (n_valid, H)
        mod = modality.expand(x.shape[0], -1)[valid]      # (n_valid,)
        out = self.shared(flat)
        for m, expert in enumerate(self.experts):
            sel = mod == m
            if sel.any():
                out = out.index_add(0, sel.nonzero().squeeze(1), expert(flat[sel]))
        return x.new_zeros(x.shape).index_put((valid,), out) if not bool(valid.all()) else out.view(x.shape)


class FusionLayer(nn.Module):
    def __init__(self, config: MoonEncoderConfig):
        super().__init__()
        h = config.hidden_size
        self.norm1, self.norm2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.attention = nn.MultiheadAttention(h, config.num_heads, dropout=config.dropout, batch_first=True)
        self.ffn = ExpertFeedForward(h, config.ffn_multiplier, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, modality, key_padding_mask):
        h = self.norm1(x)
        a, _ = self.attention(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)
        x = x + self.dropout(a)
        return x + self.dropout(self.ffn(self.norm2(x), modality, ~key_padding_mask))


class MoonPreTrainedModel(PreTrainedModel):
    config_class = MoonEncoderConfig
    base_model_prefix = "moon"
    main_input_name = "pixel_values"

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, ViTPatchTower):
            nn.init.normal_(module.position, std=std)
        elif isinstance(module, MoonItemEncoder):
            nn.init.normal_(module.image_position, std=std)
            module.logit_scale.fill_(math.log(1.0 / self.config.init_temperature))
            module.behaviour_logit_scale.fill_(math.log(1.0 / self.config.behaviour_temperature))


class MoonItemEncoder(MoonPreTrainedModel):
    def __init__(self, config: MoonEncoderConfig):
        super().__init__(config)
        h = config.hidden_size
        self.image_tower = {"vit": ViTPatchTower, "efficientnet_lite0": EfficientNetTower,
                            "clip": ClipVisionTower}[config.image_tower](config)
        self.text_tower = {"bert": BertTextTower, "minilm": BertTextTower,
                           "clip": ClipTextTower}[config.text_tower](config)
        self.image_proj = nn.Linear(self.image_tower.out_channels, h)
        # Positions for backbone feature-map cells (ViT already adds its own; harmless there).
        self.image_position = nn.Parameter(torch.zeros(1, 256, h))
        self.text_proj = nn.Linear(self.text_tower.out_channels, h)
        n_attr = 1 + sum(len(v) + 1 for v in config.attribute_vocab.values())
        self.attribute_embedding = nn.Embedding(n_attr, h, padding_idx=0)
        self.modality_embedding = nn.Embedding(3, h)
        self.fusion = nn.ModuleList([FusionLayer(config) for _ in range(config.fusion_layers)])
        self.final_norm = nn.LayerNorm(h)
        # Tower skips: the pooled output of each pretrained tower (EfficientNet's average-pooled
        # feature map, MiniLM's mean-pooled sentence embedding) is projected straight into the
        # pooled vector, so what the towers know reaches the embedding however the fusion moves.
        self.image_skip = nn.Linear(self.image_tower.out_channels, h) if config.tower_skip else None
        self.text_skip = nn.Linear(self.text_tower.out_channels, h) if config.tower_skip else None
        n_colours = config.colour_bins ** 3
        self.colour_proj = nn.Linear(n_colours, h) if n_colours else None
        self.colour_skip = nn.Linear(n_colours, h) if n_colours and config.tower_skip else None
        blocks = [self.image_tower.out_channels] + ([n_colours] if n_colours else []) + [self.text_tower.out_channels]
        self.output = EmbeddingOutput(config.max_dim, config.whiten_output, blocks if self.uses_content else [],
                                      config.content_dims, config.taste_dims)
        self.head = nn.Linear(h, config.max_dim)  # Matryoshka: every prefix is an embedding
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        # Stage 2 has its own learnable temperature: image<->own-title matching is nearly
        # deterministic and drives the shared one low, while co-engagement is noisy; at the
        # stage-1 temperature the post-training loss started above chance and rose (overconfident).
        self.behaviour_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.behaviour_temperature)))
        self.post_init()

    # ---- towers ---------------------------------------------------------------------------
    def image_raw_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.image_tower(pixel_values)

    def text_raw_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_tower(input_ids, attention_mask)

    def raw_tokens(self, batch: ItemBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone outputs (cached ones when the batch carries them)."""
        img_raw = batch.image_raw if batch.image_raw is not None else self.image_raw_tokens(batch.pixel_values)
        txt_raw = batch.text_raw if batch.text_raw is not None else self.text_raw_tokens(
            batch.input_ids, batch.attention_mask)
        return img_raw, txt_raw

    def colour_raw(self, batch: ItemBatch) -> torch.Tensor | None:
        if self.colour_proj is None:
            return None
        if batch.colour_raw is not None:
            return batch.colour_raw.to(self.colour_proj.weight.dtype)
        return colour_histogram(batch.pixel_values, self.config)

    def modality_tokens(self, batch: ItemBatch, raw: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Project every modality to `hidden_size` tokens plus their padding masks (True = pad)."""
        img_raw, txt_raw = raw if raw is not None else self.raw_tokens(batch)
        img = self.image_proj(img_raw.to(self.image_proj.weight.dtype))
        img = img + self.image_position[:, : img.shape[1]]
        colour = self.colour_raw(batch)
        if colour is not None:  # one more image token: the colour histogram
            img = torch.cat([img, self.colour_proj(colour).unsqueeze(1)], dim=1)
        txt = self.text_proj(txt_raw.to(self.text_proj.weight.dtype))
        att = self.attribute_embedding(batch.attribute_ids)
        img_pad = (~batch.has_image.bool())[:, None].expand(-1, img.shape[1])
        txt_pad = batch.attention_mask == 0
        att_pad = batch.attribute_ids == 0
        return (img, img_pad), (txt, txt_pad), (att, att_pad)

    def tower_skips(self, batch: ItemBatch, img_raw: torch.Tensor, txt_raw: torch.Tensor):
        """(image skip, text skip) vectors (B, hidden) from the towers' pooled outputs, or None."""
        if self.image_skip is None:
            return None
        img = self.image_skip(img_raw.to(self.image_skip.weight.dtype).mean(1))
        if self.colour_skip is not None:
            img = img + self.colour_skip(self.colour_raw(batch))
        m = batch.attention_mask.unsqueeze(-1).to(self.text_skip.weight.dtype)
        txt = self.text_skip((txt_raw.to(m.dtype) * m).sum(1) / m.sum(1).clamp(min=1.0))
        return img, txt

    # ---- fusion ---------------------------------------------------------------------------
    def fuse(self, parts: list[tuple[torch.Tensor, torch.Tensor, int]], skip: torch.Tensor | None = None) -> torch.Tensor:
        """Shared transformer over modality-typed tokens; masked mean pooling (+ the tower skip);
        Matryoshka head."""
        x = torch.cat([t + self.modality_embedding.weight[m] for t, _, m in parts], dim=1)
        pad = torch.cat([p for _, p, _ in parts], dim=1)
        modality = torch.cat([torch.full((t.shape[1],), m, device=t.device) for t, _, m in parts])
        # A row with nothing to attend to (an image-only query of an item without image) would
        # give NaN attention; let it see its first token instead. Callers mask such rows out.
        empty = pad.all(dim=1)
        if empty.any():
            pad = pad.clone()
            pad[empty, 0] = False
        for layer in self.fusion:
            x = layer(x, modality, pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = (self.final_norm(x) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        if skip is not None:
            pooled = pooled + skip
        return self.head(pooled)

    def forward(self, batch: ItemBatch, modes: tuple[str, ...] = MODES) -> MoonEncoderOutput:
        raw = self.raw_tokens(batch)
        (img, img_pad), (txt, txt_pad), (att, att_pad) = self.modality_tokens(batch, raw)
        skips = self.tower_skips(batch, *raw)
        s_img = s_txt = s_mm = None
        if skips is not None:
            s_img, s_txt = skips
            has = batch.has_image.to(s_img.dtype).unsqueeze(-1)  # an image-less item: the text skip only
            s_mm = (s_img * has + s_txt) / (has + 1.0)
        out = {}
        if "multimodal" in modes:
            out["multimodal"] = self.fuse([(img, img_pad, IMAGE), (txt, txt_pad, TEXT), (att, att_pad, ATTRIBUTE)],
                                          s_mm)
        if "image" in modes:
            out["image"] = self.fuse([(img, img_pad, IMAGE)], s_img)
        if "text" in modes:
            out["text"] = self.fuse([(txt, txt_pad, TEXT)], s_txt)
        return MoonEncoderOutput(**out)

    @torch.no_grad()
    def embed(self, batch: ItemBatch, mode: str = "multimodal", dim: int | None = None) -> torch.Tensor:
        """L2-normalised embeddings of size `dim` (default: the largest head)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        served = self.config.check_dim(dim)
        raw = self.raw_tokens(batch)  # once, for the fusion and the content part
        batch = replace(batch, image_raw=raw[0], text_raw=raw[1])
        z = getattr(self(batch, modes=(mode,)), mode)
        content = self.content_features(batch, raw, mode) if self.uses_content else None
        return self.output(z, content, served - self.config.content_dims - self.config.taste_dims)

    @property
    def uses_content(self) -> bool:
        """Whether the served vector reads the frozen towers' content features."""
        return bool(self.config.content_dims or self.config.taste_dims)

    def content_features(self, batch: ItemBatch, raw, mode: str = "multimodal") -> torch.Tensor:
        """The frozen towers' view of each item: pooled image features, colour histogram and mean
        title embedding, each L2-normalised; a block the query mode does not have is zero."""
        img_raw, txt_raw = raw
        has = batch.has_image.float().unsqueeze(-1) * (mode != "text")
        parts = [F.normalize(img_raw.float().mean(1), dim=-1) * has]
        colour = self.colour_raw(batch)
        if colour is not None:
            parts.append(F.normalize(colour.float(), dim=-1) * has)
        m = batch.attention_mask.unsqueeze(-1).float()
        text = F.normalize((txt_raw.float() * m).sum(1) / m.sum(1).clamp(min=1.0), dim=-1)
        parts.append(text * (mode != "image"))
        return torch.cat(parts, dim=-1)

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_towers(cls, config: MoonEncoderConfig) -> "MoonItemEncoder":
        """A new encoder whose pretrained towers start from their shipped weights (MiniLM,
        EfficientNet-lite0 ImageNet, or `clip_path`); everything else is freshly initialised."""
        model = cls(config)
        if config.image_tower == "efficientnet_lite0":
            load_imagenet_weights(model.image_tower.net)
        if config.text_tower == "minilm":
            with quiet_loading():
                model.text_tower.net = BertModel.from_pretrained(str(minilm_path()), add_pooling_layer=False)
        if config.image_tower == "clip" or config.text_tower == "clip":
            from transformers import CLIPModel

            clip = CLIPModel.from_pretrained(config.clip_path)
            if config.image_tower == "clip":
                model.image_tower.net.vision_model.load_state_dict(clip.vision_model.state_dict())
            if config.text_tower == "clip":
                model.text_tower.net.text_model.load_state_dict(clip.text_model.state_dict())
        model.apply_freezing()
        return model

    def apply_freezing(self) -> None:
        """Frozen towers get no gradients and stay in eval mode (BatchNorm statistics fixed)."""
        for flag, tower in ((self.config.freeze_image_tower, self.image_tower),
                            (self.config.freeze_text_tower, self.text_tower)):
            if flag:
                tower.requires_grad_(False)
                tower.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for flag, tower in ((self.config.freeze_image_tower, self.image_tower),
                                (self.config.freeze_text_tower, self.text_tower)):
                if flag:
                    tower.eval()
        return self


AutoConfig.register(MoonEncoderConfig.model_type, MoonEncoderConfig, exist_ok=True)
AutoModel.register(MoonEncoderConfig, MoonItemEncoder, exist_ok=True)
