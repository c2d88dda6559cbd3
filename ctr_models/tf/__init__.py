"""ctr_models.tf: the TensorFlow / TF Recommenders versions of the ctr_models DIN and DeepFM.

Same ModelInputs, same configs (DINConfig, DeepFMConfig), same batch names as the PyTorch side:
a model takes a dict of tensors named like the CTRData arrays and returns logits [B].

TF_USE_LEGACY_KERAS=1 is set here, before TensorFlow is imported, because TF Recommenders is
written against Keras 2 (tf-keras); with Keras 3 behind tf.keras its tasks and models break.
Import ctr_models.tf before anything else imports tensorflow (or export the variable yourself);
if TensorFlow was already imported with Keras 3, LegacyKerasError says so.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

try:
    import tensorflow  # noqa: E402,F401
    import tensorflow_recommenders  # noqa: E402,F401
except ImportError as e:  # name the fix, not just the missing module
    raise ImportError(f"ctr_models.tf needs the tf extra ({e}); install it with: pip install 'moon-features[tf]'") from e

from .runtime import LegacyKerasError, configure_threads, configured_threads, seed_everything  # noqa: E402

from .data import TFCTRDataset  # noqa: E402
from .deepfm import DeepFM  # noqa: E402
from .din import DIN  # noqa: E402
from .export import TFArtifact, load_keras_model, load_tf_artifact, save_tf_artifact  # noqa: E402
from .features import feature_specs, to_features  # noqa: E402
from .ranking import RankingModel  # noqa: E402
from .trainer import TFTrainer  # noqa: E402

from ..registry import MODELS as _MODELS  # noqa: E402

MODEL_TYPES = {name: entry.tf_class() for name, entry in _MODELS.items() if entry.tf}  # name -> TF class

__all__ = ["LegacyKerasError", "configure_threads", "configured_threads", "seed_everything", "TFCTRDataset", "DIN", "DeepFM",
           "TFArtifact", "load_keras_model", "load_tf_artifact", "save_tf_artifact", "feature_specs",
           "to_features", "RankingModel", "TFTrainer", "MODEL_TYPES"]
