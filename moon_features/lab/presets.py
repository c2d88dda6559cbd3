"""Lab presets: which data, which encoder chain, which variants and sweeps, which CTR recipe.

`tiny` is for tests and smoke runs (a 200-item synthetic shop, the encoder's `demo` preset with
one epoch per stage); `movielens` is the full lab on MovieLens-100k with posters (the encoder's
`small` preset with a shortened schedule so the whole lab fits ~60 minutes on 2 idle cores).
A preset is data, not code: `LabPreset.with_overrides(...)` makes a variant for a user's data.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import MoonFeaturesError


class LabError(MoonFeaturesError):
    """A lab run cannot go on (bad preset, missing data, a run folder of another preset)."""


@dataclass(frozen=True)
class CTRRecipe:
    """The fixed downstream recipe: DIN with DINConfig defaults (embed_dim 16, MOON projected to
    16, raw attention weights), Adam lr 1e-3, batch 256, `epochs` epochs, test metrics at the best
    validation-AUC epoch. Every variant and every baseline in a lab is trained with exactly this
    recipe. (bench/ctr_quality.py's DIN adds softmax attention; the lab keeps the recipe its
    recorded figures were measured with.)"""

    epochs: int = 2
    batch_size: int = 256
    eval_batch_size: int = 1024
    lr: float = 1e-3
    embed_dim: int = 16
    moon_proj_dim: int = 16
    seed: int = 0
    max_len: int = 50           # behaviour-sequence length L of every run except the L sweep


@dataclass(frozen=True)
class LabPreset:
    name: str
    dataset: str                              # "synthetic" (generated into the run) | "movielens" | "folder"
    encoder_preset: str                       # moon_features.encoder preset name
    model_overrides: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict)          # TrainSchedule overrides of the chain
    pretrain_snapshots: tuple[int, ...] = ()  # stage-1 epochs kept as "without post-training" variants
    posttrain_snapshots: tuple[int, ...] = () # stage-2 epochs kept as variants (and the examples sweep)
    dim: int | None = None                    # embedding dim fed to DIN (None: the encoder's largest)
    extra_dims: tuple[int, ...] = ()          # the final checkpoint also served at these dims
    recipe: CTRRecipe = field(default_factory=CTRRecipe)
    ks: tuple[int, ...] = (1, 10, 50)
    metric_k: int = 10                        # the K of the recall metrics used for the exchange rate
    eval_pairs: int = 2000                    # held-out co-engagement pairs for the recall metrics
    cold_items: int | float = 0.15            # count, or fraction of the catalogue
    seq_lens: tuple[int, ...] = (5, 10, 20, 50, 100)
    seq_len_baseline: bool = True             # also DIN ids-only at every L
    queue_sizes: tuple[int, ...] = (0, 256, 1024, 4096)
    negatives_downstream: bool = False        # also train DIN for every queue-size point
    shop_items: int = 200                     # dataset="synthetic" only
    seed: int = 0

    def with_overrides(self, **kw) -> "LabPreset":
        recipe = kw.pop("recipe", None)
        p = replace(self, **{k: v for k, v in kw.items() if v is not None})
        return replace(p, recipe=recipe) if recipe is not None else p

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, LabPreset] = {
    "tiny": LabPreset(
        name="tiny", dataset="synthetic", encoder_preset="demo",
        # from-scratch towers (small and quick); the demo preset's frozen pretrained ones cost more
        model_overrides=dict(image_tower="vit", text_tower="bert", freeze_image_tower=False,
                             freeze_text_tower=False, content_dims=0, taste_dims=0, patch_size=8, image_size=32,
                             hidden_size=32, num_heads=2, text_hidden_size=32),
        schedule=dict(pretrain_epochs=1, posttrain_epochs=2, batch_size=32, queue_size=64,
                      max_pairs_per_epoch=128, augment_views=1),
        pretrain_snapshots=(1,), posttrain_snapshots=(1, 2), dim=32, extra_dims=(16,),
        recipe=CTRRecipe(epochs=1, max_len=20), ks=(1, 10), eval_pairs=300, cold_items=0.15,
        seq_lens=(5, 20), queue_sizes=(0, 64), shop_items=200),
    "movielens": LabPreset(
        name="movielens", dataset="movielens", encoder_preset="small",
        # small's model; a shorter schedule: stage-2 epochs of 2048 pairs so that the snapshots
        # after 1, 2 and 4 of them are the examples sweep; one augmented view halves the cache
        schedule=dict(pretrain_epochs=10, posttrain_epochs=4, max_pairs_per_epoch=2048, augment_views=1),
        pretrain_snapshots=(3, 10), posttrain_snapshots=(1, 2, 4), dim=64, extra_dims=(96, 160),
        recipe=CTRRecipe(epochs=2, max_len=50), ks=(1, 10, 50), eval_pairs=2000, cold_items=252,
        seq_lens=(5, 10, 20, 50, 100), queue_sizes=(0, 1024, 4096)),
}


def get_lab_preset(name: str) -> LabPreset:
    if name not in PRESETS:
        raise LabError(f"unknown lab preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
