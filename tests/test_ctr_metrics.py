import numpy as np
import pytest

from ctr_models.metrics import UndefinedMetricError, auc, auc_standard_error, gauc, logloss, rela_impr


def test_auc_by_hand_with_ties():
    # pairs (pos, neg): (0.8,0.1) win, (0.8,0.4) win, (0.4,0.1) win, (0.4,0.4) tie -> 3.5 / 4
    assert auc([1, 0, 1, 0], [0.8, 0.1, 0.4, 0.4]) == pytest.approx(0.875)
    assert auc([0, 1], [0.2, 0.9]) == 1.0
    with pytest.raises(UndefinedMetricError):
        auc([1, 1], [0.2, 0.3])


def test_gauc_is_impression_weighted_over_users_with_both_classes():
    labels = [1, 0, 0,   1, 0,   1, 1]
    scores = [0.9, 0.1, 0.95,  0.2, 0.8,  0.5, 0.6]
    users = [7, 7, 7,   8, 8,   9, 9]
    # user 7: 3 impressions, AUC 0.5; user 8: 2 impressions, AUC 0; user 9 has one class -> skipped
    assert gauc(labels, scores, users) == pytest.approx((3 * 0.5 + 2 * 0.0) / 5)


def test_logloss_and_relaimpr():
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert rela_impr(0.7, 0.65) == pytest.approx((0.2 / 0.15 - 1) * 100)
    with pytest.raises(UndefinedMetricError):
        rela_impr(0.7, 0.5)


def test_auc_matches_sklearn_when_available():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500), 2)  # rounded so there are ties
    assert auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))


def test_auc_standard_error_matches_the_spread_over_samples():
    """Hanley-McNeil: by hand at AUC 0.5, and close to the AUC's spread over resampled test sets."""
    assert auc_standard_error(0.5, 10, 20) == pytest.approx(np.sqrt((0.25 + 9 / 12 + 19 / 12) / 200))
    rng = np.random.default_rng(0)
    n_pos, n_neg = 40, 80
    aucs = [auc(np.r_[np.ones(n_pos), np.zeros(n_neg)], np.r_[rng.normal(0.6, 1, n_pos), rng.normal(0, 1, n_neg)])
            for _ in range(2000)]
    se = auc_standard_error(float(np.mean(aucs)), n_pos, n_neg)
    assert se == pytest.approx(np.std(aucs), rel=0.15)
    with pytest.raises(UndefinedMetricError):
        auc_standard_error(0.6, 0, 5)
