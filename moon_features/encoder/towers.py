"""The encoder's towers: each turns one modality into a sequence of backbone tokens.

Image: a small ViT trained from scratch, EfficientNet-lite0 (its last feature map's cells), or
the vision half of a local CLIP checkpoint. Text: a BERT (small from scratch, or MiniLM's
architecture) or CLIP's text half. `out_channels` is the width of the tokens each returns.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel

from .configuration import MoonEncoderConfig
from .efficientnet_lite import HEAD_CHANNELS, EfficientNetLite0


class ViTPatchTower(nn.Module):
    """Small ViT: non-overlapping patches -> linear -> positions -> transformer layers."""

    def __init__(self, config: MoonEncoderConfig):
        super().__init__()
        h = config.hidden_size
        self.patch = nn.Conv2d(3, h, config.patch_size, stride=config.patch_size)
        n = (config.image_size // config.patch_size) ** 2
        self.position = nn.Parameter(torch.zeros(1, n, h))
        layer = nn.TransformerEncoderLayer(h, config.num_heads, h * config.ffn_multiplier, config.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.layers = nn.TransformerEncoder(layer, config.image_layers, enable_nested_tensor=False)
        self.out_channels = h

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        return self.layers(x + self.position)


class EfficientNetTower(nn.Module):
    """EfficientNet-lite0; its last feature map's cells become the image tokens."""

    def __init__(self, config: MoonEncoderConfig):
        super().__init__()
        self.net = EfficientNetLite0()
        self.out_channels = HEAD_CHANNELS

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values).flatten(2).transpose(1, 2)


class ClipVisionTower(nn.Module):
    def __init__(self, config: MoonEncoderConfig):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        self.net = CLIPVisionModel(CLIPVisionConfig(**config.image_tower_config))
        self.out_channels = self.net.config.hidden_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=pixel_values).last_hidden_state


class BertTextTower(nn.Module):
    """BERT-style text encoder: a small one from scratch, or MiniLM's architecture (weights are
    loaded by `MoonItemEncoder.from_towers`)."""

    def __init__(self, config: MoonEncoderConfig):
        super().__init__()
        if config.text_tower == "minilm":
            bert_config = BertConfig(**config.text_tower_config)
        else:
            bert_config = BertConfig(vocab_size=config.vocab_size, hidden_size=config.text_hidden_size,
                                     num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                                     intermediate_size=config.text_hidden_size * 4,
                                     max_position_embeddings=max(64, config.max_text_length),
                                     hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout)
        self.net = BertModel(bert_config, add_pooling_layer=False)
        self.out_channels = bert_config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class ClipTextTower(nn.Module):
    def __init__(self, config: MoonEncoderConfig):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        self.net = CLIPTextModel(CLIPTextConfig(**config.text_tower_config))
        self.out_channels = self.net.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
