"""Shared building blocks of the CTR models."""
from .attention import TargetAttention, length_mask
from .dice import Dice
from .embedding import FeatureEmbedding, safe_ids
from .fm import FMInteraction
from .mlp import MLP, activation
from .similarity import SimilarityFusion, SimilarityHeads, SimTierHistogram, cosine_similarity

__all__ = ["FeatureEmbedding", "safe_ids", "TargetAttention", "length_mask", "Dice", "FMInteraction", "MLP", "activation",
           "SimilarityFusion", "SimilarityHeads", "SimTierHistogram", "cosine_similarity"]
