"""ctr_models: pure-PyTorch CTR models (DIN, DeepFM) over a CTRBatch, with MOON embeddings."""
from .artifact import ArtifactError, ModelArtifact, SpecMismatchError, from_pretrained, save_pretrained
from .batch import BatchShapeError, CTRBatch
from .config import ConfigError
from .data import CTRData, DataError
from .deepfm import DeepFM, DeepFMConfig
from .din import DIN, DINConfig
from .inputs import ModelInputs, SequenceField, SparseField
from .trainer import FitResult, Trainer, TrainerConfig, seed_everything

__all__ = ["ArtifactError", "ModelArtifact", "SpecMismatchError", "from_pretrained", "save_pretrained",
           "BatchShapeError", "CTRBatch", "ConfigError", "CTRData", "DataError", "DeepFM", "DeepFMConfig",
           "DIN", "DINConfig", "ModelInputs", "SequenceField", "SparseField", "FitResult", "Trainer",
           "TrainerConfig", "seed_everything"]
