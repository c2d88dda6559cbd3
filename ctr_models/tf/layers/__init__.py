"""Keras mirrors of ctr_models.layers (same maths, same defaults, same initialisation)."""
from .attention import TargetAttention
from .dice import Dice
from .embedding import FeatureEmbedding, length_mask, safe_ids
from .fm import fm_interaction
from .mlp import MLP, PReLU, activation, linear, load_linear
from .similarity import SimilarityFusion, SimilarityHeads, SimTierHistogram, cosine_similarity

__all__ = ["TargetAttention", "Dice", "FeatureEmbedding", "length_mask", "safe_ids", "fm_interaction", "MLP",
           "PReLU", "activation", "linear", "load_linear", "SimilarityFusion", "SimilarityHeads", "SimTierHistogram",
           "cosine_similarity"]
