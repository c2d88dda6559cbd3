"""Small statistics for the lab: least-squares slope, Spearman rank correlation, power-law fit.

Pure numpy (scipy only for the Spearman p-value when it is installed), so the analysis of a
finished lab can be rerun anywhere from its JSON files.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr  # scipy comes with scikit-learn, a dependency

POWER_LAW_MIN_R2 = 0.9   # below this a log-log line does not describe the points: no power law claimed
POWER_LAW_MIN_POINTS = 3


def _clean(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def least_squares(x, y) -> dict:
    """y = slope * x + intercept; r2 of that line; n points used (non-finite pairs dropped)."""
    x, y = _clean(x, y)
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "r2": float("nan"), "n": n}
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2, "n": n}


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(x, y) -> dict:
    """Spearman rank correlation rho (Pearson on average ranks) and, with scipy, its p-value."""
    x, y = _clean(x, y)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": float("nan"), "p_value": float("nan"), "n": n}
    rx, ry = _ranks(x), _ranks(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    return {"rho": rho, "p_value": float(spearmanr(x, y).pvalue), "n": n}


def power_law_fit(x, y, min_r2: float = POWER_LAW_MIN_R2) -> dict:
    """Fit y = a * x^b by least squares on (log x, log y), using only points with x > 0 and y > 0.

    `holds` is True only with >= 3 points and R^2 >= min_r2: a straight line through two points
    (or a poor fit) is not evidence of a power law."""
    x, y = _clean(x, y)
    keep = (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    line = least_squares(np.log(x), np.log(y))
    a = math.exp(line["intercept"]) if np.isfinite(line["intercept"]) else float("nan")
    holds = bool(line["n"] >= POWER_LAW_MIN_POINTS and np.isfinite(line["r2"]) and line["r2"] >= min_r2)
    return {"exponent": line["slope"], "prefactor": a, "r2": line["r2"], "n": line["n"], "holds": holds,
            "min_r2": min_r2}


def describe_power_law(fit: dict, y_name: str, x_name: str) -> str:
    if fit["n"] < POWER_LAW_MIN_POINTS:
        return f"{y_name} vs {x_name}: {fit['n']} usable point(s), too few to fit"
    text = (f"{y_name} ~ {fit['prefactor']:.3g} * {x_name}^{fit['exponent']:+.3f} "
            f"(log-log R^2 {fit['r2']:.2f}, {fit['n']} points)")
    return text + (": a power law" if fit["holds"] else f": R^2 < {fit['min_r2']}, not a power law")
