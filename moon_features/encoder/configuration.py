"""MoonEncoderConfig: everything needed to rebuild the item encoder, saved as config.json.

The config is a transformers `PretrainedConfig`, so `save_pretrained` / `from_pretrained`
round-trip it and `AutoConfig` / `AutoModel` find the model by `model_type`.
Presets (`demo`, `small`, `full`) are named configs + training schedules, not code paths.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from transformers import PretrainedConfig

from ..spec import embedding_view_name  # noqa: F401  (re-exported: the encoder names its output view)

from .errors import EncoderError, UnsupportedDimensionError
from .pretrained import clip_tower_configs, minilm_config_dict

IMAGE_TOWERS = ("vit", "efficientnet_lite0", "clip")
TEXT_TOWERS = ("bert", "minilm", "clip")


class MoonEncoderConfig(PretrainedConfig):
    """Configuration of `MoonItemEncoder`.

    Image tower: ``vit`` (patches of ``patch_size`` px, ``image_layers`` transformer layers,
    trained from scratch), ``efficientnet_lite0`` (ImageNet CNN; its last feature map becomes
    the image tokens) or ``clip`` (the vision half of a local CLIP checkpoint, ``clip_path``).
    Text tower: ``bert`` (small BERT from scratch, MiniLM tokenizer), ``minilm`` (all-MiniLM-L6-v2
    weights) or ``clip`` (text half of ``clip_path``). ``freeze_*`` keep pretrained towers fixed,
    which lets training cache their outputs once per run (the CPU budget depends on it).

    Fusion: image, text and attribute tokens get a modality-type embedding and go through
    ``fusion_layers`` shared attention layers whose feed-forward part is a per-modality expert
    plus a shared expert (MOON2.0's modality-balanced experts). Mean pooling over the tokens
    present gives one vector; a Matryoshka head maps it to ``max(embedding_dims)`` and every
    prefix in ``embedding_dims`` is a usable, separately L2-normalised embedding.

    ``colour_bins`` > 0 adds a colour token: the image's joint RGB histogram (``colour_bins``
    per channel), which ImageNet CNNs -- trained colour-invariant -- encode poorly, and which is
    most of what a shopper sees. ``whiten_output`` and ``content_dims`` shape what `embed`
    serves (a whitened trained vector beside a fixed projection of the frozen towers' features;
    see encoder/output.py): a served dimension is a trained prefix plus ``content_dims``.
    """

    model_type = "moon_item_encoder"

    def __init__(
        self,
        image_tower: str = "vit",
        image_size: int = 64,
        patch_size: int = 8,
        image_layers: int = 2,
        text_tower: str = "bert",
        text_hidden_size: int = 128,
        text_layers: int = 2,
        text_heads: int = 4,
        max_text_length: int = 24,
        vocab_size: int = 30522,
        clip_path: str | None = None,
        image_tower_config: dict | None = None,
        text_tower_config: dict | None = None,
        image_mean: tuple[float, ...] | list[float] | None = None,
        image_std: tuple[float, ...] | list[float] | None = None,
        freeze_image_tower: bool = False,
        freeze_text_tower: bool = False,
        hidden_size: int = 128,
        num_heads: int = 4,
        fusion_layers: int = 2,
        ffn_multiplier: int = 2,
        dropout: float = 0.1,
        attribute_vocab: dict[str, list[str]] | None = None,
        max_attribute_tokens: int = 4,
        embedding_dims: tuple[int, ...] | list[int] = (32, 64, 128),
        tower_skip: bool = False,
        colour_bins: int = 0,
        whiten_output: bool = False,
        content_dims: int = 0,
        taste_dims: int = 0,
        text_columns: tuple[str, ...] | list[str] = ("title",),
        init_temperature: float = 0.07,
        behaviour_temperature: float = 0.07,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        # every argument is kept under its own name, once checked and normalised (below the class)
        settings = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        for name, value in _normalised(settings).items():
            setattr(self, name, value)
        super().__init__(**kwargs)

    @property
    def max_dim(self) -> int:
        """Size of the trained head (its largest Matryoshka prefix)."""
        return self.embedding_dims[-1]

    @property
    def served_dims(self) -> list[int]:
        """Sizes `embed` can serve: each trained prefix plus the content and taste parts."""
        return [d + self.content_dims + self.taste_dims for d in self.embedding_dims]

    def check_dim(self, dim: int | None) -> int:
        """The dimension to serve: `dim`, or the largest when None."""
        if dim is None:
            return self.served_dims[-1]
        if int(dim) not in self.served_dims:
            raise UnsupportedDimensionError(int(dim), self.served_dims)
        return int(dim)

    def architecture_signature(self) -> dict:
        """The fields that decide parameter shapes; two configs with different signatures
        cannot share a checkpoint (used to refuse resuming / loading across configs)."""
        keys = ("image_tower", "image_size", "patch_size", "image_layers", "text_tower",
                "text_hidden_size", "text_layers", "text_heads", "max_text_length", "vocab_size",
                "hidden_size", "num_heads", "fusion_layers", "ffn_multiplier", "attribute_vocab",
                "max_attribute_tokens", "embedding_dims", "tower_skip", "text_columns", "colour_bins",
                "whiten_output", "content_dims", "taste_dims")
        return {k: getattr(self, k) for k in keys}


def _check(s: dict) -> None:
    """Raise EncoderError for settings that cannot build an encoder."""
    if s["image_tower"] not in IMAGE_TOWERS:
        raise EncoderError(f"image_tower must be one of {IMAGE_TOWERS}, got {s['image_tower']!r}")
    if s["text_tower"] not in TEXT_TOWERS:
        raise EncoderError(f"text_tower must be one of {TEXT_TOWERS}, got {s['text_tower']!r}")
    if "clip" in (s["image_tower"], s["text_tower"]) and not s["clip_path"]:
        raise EncoderError("a 'clip' tower needs clip_path: a local directory with a CLIP checkpoint")
    if s["image_tower"] == "vit" and s["image_size"] % s["patch_size"]:
        raise EncoderError(f"image_size {s['image_size']} must be a multiple of patch_size {s['patch_size']}")
    if not s["embedding_dims"] or min(int(d) for d in s["embedding_dims"]) <= 0:
        raise EncoderError(f"embedding_dims must be positive integers, got {s['embedding_dims']}")
    if s["hidden_size"] % s["num_heads"]:
        raise EncoderError(f"hidden_size {s['hidden_size']} must be divisible by num_heads {s['num_heads']}")
    if s["colour_bins"] < 0 or s["colour_bins"] > 16:
        raise EncoderError(f"colour_bins must be 0 (off) .. 16 per channel, got {s['colour_bins']}")
    for part in ("content_dims", "taste_dims"):
        if s[part] and not (s["freeze_image_tower"] and s["freeze_text_tower"]):
            raise EncoderError(f"{part} > 0 reads the frozen towers' features: set freeze_image_tower "
                               f"and freeze_text_tower (or {part}=0)")


def _tower_configs(s: dict) -> tuple[dict | None, dict | None]:
    """Pretrained towers' architectures, copied into the config so that a saved encoder rebuilds
    without the package or CLIP folder it started from."""
    image_cfg, text_cfg = s["image_tower_config"], s["text_tower_config"]
    if s["text_tower"] == "minilm" and text_cfg is None:
        text_cfg = minilm_config_dict()
    if "clip" in (s["image_tower"], s["text_tower"]) and (image_cfg is None or text_cfg is None):
        vision, text = clip_tower_configs(s["clip_path"])
        image_cfg = image_cfg or (vision if s["image_tower"] == "clip" else None)
        text_cfg = text_cfg or (text if s["text_tower"] == "clip" else None)
    return image_cfg, text_cfg


def _normalised(s: dict) -> dict:
    _check(s)
    out = dict(s)
    out["image_tower_config"], out["text_tower_config"] = _tower_configs(s)
    mean, std = s["image_mean"], s["image_std"]
    if mean is None:  # CLIP's own statistics; the others were trained on [-1, 1] inputs
        mean, std = ((0.4815, 0.4578, 0.4082), (0.2686, 0.2613, 0.2758)) \
            if s["image_tower"] == "clip" else ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    out["image_mean"], out["image_std"] = list(mean), list(std)
    out["attribute_vocab"] = dict(s["attribute_vocab"] or {})
    out["embedding_dims"] = sorted(int(d) for d in s["embedding_dims"])
    out["tower_skip"], out["whiten_output"] = bool(s["tower_skip"]), bool(s["whiten_output"])
    out["colour_bins"], out["content_dims"] = int(s["colour_bins"]), int(s["content_dims"])
    out["taste_dims"] = int(s["taste_dims"])
    columns = [s["text_columns"]] if isinstance(s["text_columns"], str) else list(s["text_columns"])
    out["text_columns"] = columns or ["title"]
    return out


@dataclass
class TrainSchedule:
    """How long and how hard each stage trains; part of a preset, recorded with the model."""

    pretrain_epochs: int = 2
    posttrain_epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3                 # stage 1
    posttrain_lr: float = 3e-4       # stage 2: lower, the memory queue goes stale under fast updates
    max_grad_norm: float = 1.0
    weight_decay: float = 0.01
    hard_negatives: int = 1          # same-category negatives per positive pair
    uniform_negatives: int = 0       # catalogue items drawn uniformly per batch, shared negatives
    logq_correction: bool = False    # correct in-batch / queue negatives for their sampling frequency
    posttrain_warmup_steps: int = 0  # linear stage-2 lr warm-up (steps), then constant
    queue_size: int = 512            # multimodal embeddings of earlier batches kept as negatives
    intra_weight: float = 0.5        # weight of the image<->own-title loss in stage 2
    pair_window: int = 3             # a positive pairs an item with the next `pair_window` ...
    pair_max_gap_s: float = 86400.0  # ... positively rated items of the same user within this gap
    max_pairs_per_epoch: int = 20000
    augment_views: int = 2           # augmented copies per image for robustness (cached)
    view_weight: float = 0.0         # stage 1: weight of image view <-> other image view
    num_threads: int | None = None  # None: runtime.safe_thread_count() (idle cores; see runtime.py)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Preset:
    name: str
    model: dict = field(default_factory=dict)
    schedule: TrainSchedule = field(default_factory=TrainSchedule)


PRESETS: dict[str, Preset] = {
    # Frozen pretrained towers (outputs cached once), a colour token, a small trainable fusion;
    # served: 32 whitened content dims from the towers, 32 taste dims (the towers' features trained on
    # click histories, taste.py) and the whitened trained vector. The
    # demo must finish in ~2 minutes on 2 cores. docs/encoder.md "Where the signal was lost"
    # has the measurements that chose it (the from-scratch ViT it replaces lost colour).
    "demo": Preset("demo", dict(image_tower="efficientnet_lite0", image_size=64, text_tower="minilm",
                                freeze_image_tower=True, freeze_text_tower=True, tower_skip=True,
                                hidden_size=128, num_heads=4, fusion_layers=1, max_text_length=16,
                                dropout=0.0, embedding_dims=[16, 32, 64], colour_bins=4,
                                whiten_output=True, content_dims=32, taste_dims=32),
                   TrainSchedule(pretrain_epochs=2, posttrain_epochs=2, batch_size=64, view_weight=1.0,
                                 queue_size=256, augment_views=1, max_pairs_per_epoch=4000)),
    # Pretrained towers frozen (outputs cached), trainable fusion: the MovieLens benchmark preset.
    # Tower skips keep MiniLM / EfficientNet knowledge in the embedding; the text tower reads
    # title + year + genres. Stage 2: lr 1e-3 after a 16-step warm-up, its own temperature,
    # logQ-corrected in-batch / queue negatives plus 128 uniform catalogue negatives per batch.
    # text_columns "auto": title + the dataset's categorical attributes + multi-valued text columns
    # (encoder/columns.py; on MovieLens: title, category, release_year, genres).
    "small": Preset("small", dict(image_tower="efficientnet_lite0", image_size=96,
                                  text_tower="minilm", freeze_image_tower=True, freeze_text_tower=True,
                                  hidden_size=128, num_heads=4, fusion_layers=2, max_text_length=24,
                                  dropout=0.0, embedding_dims=[32, 64, 128], tower_skip=True,
                                  text_columns="auto", colour_bins=4,
                                  whiten_output=True, content_dims=32),  # taste part: not yet measured here
                    # dropout costs ~15% of a CPU step; weight decay + frozen towers regularise instead
                    # one stage-2 pass over 16,384 distinct pairs at lr 5e-4: measured (docs/benchmarks.md),
                    # repeating fewer pairs memorises training-period pairs, 32,768 gained nothing more
                    TrainSchedule(pretrain_epochs=10, posttrain_epochs=1, batch_size=128, posttrain_lr=5e-4,
                                  posttrain_warmup_steps=16, queue_size=1024, augment_views=2,
                                  max_pairs_per_epoch=16384, uniform_negatives=128, logq_correction=True)),
    "full": Preset("full", dict(image_tower="efficientnet_lite0", image_size=128,
                                text_tower="minilm", freeze_image_tower=True, freeze_text_tower=True,
                                hidden_size=256, num_heads=8, fusion_layers=3, max_text_length=32,
                                embedding_dims=[32, 64, 128, 256], text_columns="auto"),
                   TrainSchedule(pretrain_epochs=4, posttrain_epochs=10, batch_size=256,
                                 queue_size=4096, augment_views=3, max_pairs_per_epoch=60000)),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise EncoderError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[name]
    return Preset(p.name, dict(p.model), TrainSchedule(**p.schedule.to_dict()))
