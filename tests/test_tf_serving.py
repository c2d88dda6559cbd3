"""The scoring service serves a TF SavedModel: a torch-trained DIN+MOON ported to Keras, exported,
reloaded through ctr_models.tf.serving and handed to CTRScorer scores like the torch artifact."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]
ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
ctf.configure_threads(1)

from ctr_models.artifact import from_pretrained  # noqa: E402
from ctr_models.tf import serving  # noqa: E402


def test_ctrscorer_scores_a_tf_artifact_like_the_torch_one(tmp_path):
    from fixtures.serving_setup import build_serving_setup, users_with_history
    from moon_features.serving.scorer import CTRScorer
    from moon_features.store.repo import open_store

    s = build_serving_setup(tmp_path / "setup", online="sqlite")
    store = open_store(s.repo)
    torch_art = from_pretrained(s.model_dir)
    model = ctf.MODEL_TYPES[torch_art.model.config.model_type](torch_art.model.config, torch_art.inputs)
    model(ctf.features.dummy_features(torch_art.inputs), training=False)
    model.load_torch(torch_art.model)
    tf_dir = ctf.save_tf_artifact(model, tmp_path / "tf_model", extra=torch_art.extra, metrics=torch_art.metrics)

    user = int(users_with_history(s.repo, min_len=3)[0])
    candidates = np.arange(1, 41)
    expected = CTRScorer(store, s.model_dir).score(user, candidates)
    scorer = CTRScorer(store, serving.load_artifact(tf_dir))  # no change to the scorer
    got = scorer.score_detailed(user, candidates)
    assert got.history_length >= 3 and np.std(expected) > 1e-4
    np.testing.assert_allclose(got.scores, expected, rtol=1e-4, atol=1e-6)
    assert scorer.model_version.startswith("din-")
    # The service is given a folder: it recognises the TensorFlow artifact by its config.json.
    from_folder = CTRScorer(store, tf_dir)
    np.testing.assert_allclose(from_folder.score(user, candidates), expected, rtol=1e-4, atol=1e-6)
    assert from_folder.model_version.startswith("din-") and from_folder.model_version != \
        CTRScorer(store, s.model_dir).model_version
