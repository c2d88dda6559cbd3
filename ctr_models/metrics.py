"""CTR metrics in numpy (no scikit-learn): AUC, GAUC, logloss, RelaImpr."""
from __future__ import annotations

import numpy as np


class UndefinedMetricError(ValueError):
    """AUC is undefined when the labels hold only one class."""


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank (what makes AUC count ties as 1/2)."""
    order = np.argsort(x, kind="mergesort")
    _, inv, counts = np.unique(x[order], return_inverse=True, return_counts=True)
    avg = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = avg[inv]
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise UndefinedMetricError(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    r = _average_ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC of the DIN paper: sum_u n_u * AUC_u / sum_u n_u, n_u = impressions of user u,
    over the users whose impressions contain both classes (AUC is undefined for the others)."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    order = np.argsort(g, kind="mergesort")
    y, s, g = y[order], s[order], g[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    num = den = 0.0
    for a, b in zip(starts, ends):
        pos = y[a:b].sum()
        if 0 < pos < b - a:
            num += (b - a) * auc(y[a:b], s[a:b])
            den += b - a
    if den == 0:
        raise UndefinedMetricError("GAUC needs at least one group with both classes")
    return num / den


def auc_standard_error(auc_value: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC over n_pos positives and n_neg negatives (Hanley and McNeil, 1982):
    how far the AUC of the same model would move on another sample of that size."""
    if n_pos < 1 or n_neg < 1:
        raise UndefinedMetricError(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    a = auc_value
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return float(np.sqrt(var))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def rela_impr(auc_model: float, auc_base: float) -> float:
    """RelaImpr of the DIN paper, in percent: ((AUC_model - 0.5) / (AUC_base - 0.5) - 1) * 100."""
    if auc_base == 0.5:
        raise UndefinedMetricError("RelaImpr is undefined against a random (AUC 0.5) base model")
    return ((auc_model - 0.5) / (auc_base - 0.5) - 1.0) * 100.0


def ctr_metrics(labels: np.ndarray, probs: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
    """AUC, logloss and (with groups) GAUC in one dict; NaN where a metric is undefined."""
    out = {"n": float(len(labels)), "logloss": logloss(labels, probs)}
    try:
        out["auc"] = auc(labels, probs)
    except UndefinedMetricError:
        out["auc"] = float("nan")
    if groups is not None:
        try:
            out["gauc"] = gauc(labels, probs, groups)
        except UndefinedMetricError:
            out["gauc"] = float("nan")
    return out
