"""TF artifacts: a SavedModel with a serving signature over the batch tensors, plus metadata.

    <dir>/config.json    {"format_version": 1, "backend": "tensorflow", "model_type", "config",
                          "inputs", "extra", "metrics", "signature"}  (written last: marks completeness)
    <dir>/saved_model/   signature "serving_default": one named input per feature_specs(inputs)
                         entry (no label) -> {"logits": [B], "probs": [B]}
                         signature "score_request": the same inputs, one request (one user, B
                         candidates): row 0's history is every row's, embedded once; the history
                         inputs may have 1 row or B rows
    <dir>/weights/       tf.train.Checkpoint of the Keras model (rebuild + fine-tune: load_keras_model)

The same config.json layout as ctr_models.artifact, so `inputs` and `extra` (feature spec,
feature service, embedding version) are checked the same way by whoever loads it; the SavedModel
itself needs neither Python code from this package nor Keras to run.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..artifact import FORMAT_VERSION, ArtifactError, check_meta
from ..batch import BatchShapeError
from ..inputs import ModelInputs
from ..registry import MODELS
from .features import dummy_features, feature_specs, history_of_first_row, to_features

BACKEND = "tensorflow"
SIGNATURE = "serving_default"
REQUEST_SIGNATURE = "score_request"


def serving_function(model: tf.keras.Model, shared_history: bool = False) -> tf.types.experimental.ConcreteFunction:
    """The signature: positional tensors named after the features (so callers pass them by name).

    `shared_history`: the request signature (the model's shared-history path). Its history inputs
    (sequences, hist_len, hist_emb) may hold 1 row, sent once per request, or B rows, of which
    row 0 is used; hist_len is broadcast to the B candidates because the models take the batch
    size from it.
    """
    specs = feature_specs(model.inputs)
    names = list(specs)
    first_target = model.inputs.sparse[0].name  # a candidate-side input: B rows in either signature

    @tf.function(input_signature=[specs[n] for n in names])
    def serve(*tensors):
        features = dict(zip(names, tensors))
        if shared_history:
            rows = tf.shape(features[first_target])[:1]
            features["hist_len"] = tf.broadcast_to(features["hist_len"][:1], rows)
        logits = model(features, training=False, shared_history=shared_history)
        return {"logits": logits, "probs": tf.sigmoid(logits)}

    return serve.get_concrete_function()


def save_tf_artifact(model: tf.keras.Model, path: str | Path, extra: dict | None = None,
                     metrics: dict | None = None) -> Path:
    path = Path(path)
    model_type = model.config.model_type
    if model_type not in MODELS or MODELS[model_type].tf_class() is not type(model):
        raise ArtifactError(f"cannot save {type(model).__name__}: model_type {model_type!r} is not a TF model type")
    meta = {"format_version": FORMAT_VERSION, "backend": BACKEND, "model_type": model_type,
            "config": model.config.to_dict(), "inputs": model.inputs.to_dict(), "extra": extra or {},
            "metrics": metrics or {},
            "signature": {n: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                          for n, s in feature_specs(model.inputs).items()}}
    try:
        text = json.dumps(meta, indent=2, sort_keys=True)
    except TypeError as e:
        raise ArtifactError(f"extra / metrics must be JSON-serialisable: {e}") from e
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").unlink(missing_ok=True)  # an interrupted overwrite must not look complete
    model(dummy_features(model.inputs), training=False)  # build every lazy layer before saving
    module = tf.Module()
    # Track the variables, not the Keras model: saving a Keras model makes tf.saved_model trace
    # every layer's call for Keras' own reload path (tens of seconds), which the signature never uses.
    module.variables_ = list(model.variables)
    for sub in ("saved_model", "weights"):
        shutil.rmtree(path / sub, ignore_errors=True)
    tf.saved_model.save(module, str(path / "saved_model"), signatures={
        SIGNATURE: serving_function(model), REQUEST_SIGNATURE: serving_function(model, shared_history=True)})
    tf.train.Checkpoint(model=model).write(str(path / "weights" / "ckpt"))
    (path / "config.json").write_text(text)
    return path


def read_meta(path: str | Path, inputs: ModelInputs | None = None) -> dict:
    """config.json of a TF artifact, checked: ArtifactError / SpecMismatchError otherwise."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ArtifactError(f"{path} is not a model artifact (no config.json); save one with save_tf_artifact")
    meta = json.loads(cfg_file.read_text())
    if meta.get("backend", "torch") != BACKEND:
        raise ArtifactError(f"{path} is a {meta.get('backend', 'torch')} artifact; load it with "
                            "ctr_models.from_pretrained")
    check_meta(path, meta, inputs)  # the same format, model type and inputs checks as a torch artifact
    return meta


@dataclass
class TFArtifact:
    """A loaded SavedModel and its metadata; `predict` takes a CTRBatch or a dict of arrays.

    A batch with `shared_history` (one request, as the scoring service builds it) runs the
    "score_request" signature on row 0's history only; an artifact saved before that signature
    existed runs the general one, which gives the same scores on the repeated history.
    """

    path: Path
    model_type: str
    config: object            # DINConfig / DeepFMConfig
    inputs: ModelInputs
    signature: object = field(repr=False)
    extra: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    loaded: object = field(default=None, repr=False)  # keeps the restored variables alive
    request_signature: object = field(default=None, repr=False)  # None: saved without "score_request"

    def _run(self, batch) -> dict[str, np.ndarray]:
        feats = to_features(batch, self.inputs)
        feats.pop("label", None)
        missing = sorted(set(feature_specs(self.inputs)) - set(feats))
        if missing:
            raise BatchShapeError(f"batch lacks {missing} needed by the {self.model_type} model at {self.path}")
        signature = self.signature
        if getattr(batch, "shared_history", False) and self.request_signature is not None:
            signature = self.request_signature
            feats.update(history_of_first_row(feats, self.inputs))  # the history crosses once, not B times
        out = signature(**{k: tf.constant(v) for k, v in feats.items()})
        return {k: v.numpy() for k, v in out.items()}

    def logits(self, batch) -> np.ndarray:
        return self._run(batch)["logits"]

    def predict(self, batch) -> np.ndarray:
        """float32 [B] click probabilities."""
        return self._run(batch)["probs"]


def load_tf_artifact(path: str | Path, inputs: ModelInputs | None = None) -> TFArtifact:
    path = Path(path)
    meta = read_meta(path, inputs)
    loaded = tf.saved_model.load(str(path / "saved_model"))
    config_class = MODELS[meta["model_type"]].config_class()
    return TFArtifact(path=path, model_type=meta["model_type"], config=config_class.from_dict(meta["config"]),
                     inputs=ModelInputs.from_dict(meta["inputs"]), signature=loaded.signatures[SIGNATURE],
                     extra=meta.get("extra", {}), metrics=meta.get("metrics", {}), loaded=loaded,
                     request_signature=loaded.signatures.get(REQUEST_SIGNATURE))


def load_keras_model(path: str | Path, inputs: ModelInputs | None = None) -> tf.keras.Model:
    """Rebuild the Keras model from config.json and restore its weights (e.g. to fine-tune it)."""
    path = Path(path)
    meta = read_meta(path, inputs)
    cls = MODELS[meta["model_type"]].tf_class()
    model = cls(cls.config_class.from_dict(meta["config"]), ModelInputs.from_dict(meta["inputs"]))
    model(dummy_features(model.inputs), training=False)
    tf.train.Checkpoint(model=model).read(str(path / "weights" / "ckpt")).assert_existing_objects_matched()
    return model
