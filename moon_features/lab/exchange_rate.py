"""`moon-features lab exchange-rate`: which intermediate metric buys downstream CTR gains?

MOON's method lesson: pick the embedding model's intermediate metric by its exchange rate, how
much downstream AUC one unit of the intermediate metric buys. For several encoder variants
(training steps, with / without post-training, served dimension) this computes every
intermediate metric and the downstream DIN + embeddings test AUC / GAUC / cold-item AUC with a
fixed recipe, plus DIN ids-only from the same run; then per intermediate metric m:

* exchange rate = least-squares slope of downstream AUC (equivalently its lift over ids-only)
  on m across the variants; reported per +0.1 of m (recall) or -0.1 (loss);
* Spearman rank correlation of m (oriented so that higher = better) with AUC and GAUC;
* a scatter plot with the fitted line.

The metric with the highest oriented Spearman rho on AUC (ties: higher R^2) predicts
downstream gains best; with few variants or rho <= 0 the summary says that no metric does.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import matplotlib

matplotlib.use("Agg")  # files only: the lab runs headless
import matplotlib.pyplot as plt  # noqa: E402

from .fitting import least_squares, spearman
from .intermediate import METRIC_INFO
from .points import read_json, write_json
from .session import BASELINES, VARIANTS, LabSession

TARGETS = ("auc", "gauc", "cold_auc")
STEP = 0.1  # exchange rates are quoted per 0.1 of the intermediate metric


def metric_names(k: int) -> list[str]:
    return [f"image_search@{k}", f"text_search@{k}", f"near_duplicate@{k}", "alignment_loss"]


def _info(metric: str) -> tuple[str, int]:
    return METRIC_INFO[metric.split("@")[0]]


def analyse(records: list[dict], baseline: dict | None, k: int) -> dict:
    """Exchange rate, rank correlation and the verdict from finished variant points."""
    recs = [r for r in records if "downstream" in r]
    base = baseline["downstream"] if baseline else {}
    rates = {}
    for m in metric_names(k):
        pretty, direction = _info(m)
        x = np.array([r["metrics"].get(m, np.nan) for r in recs], dtype=float)
        row = {"metric": m, "name": pretty, "direction": direction, "n": int(np.isfinite(x).sum()),
               "range": [float(np.nanmin(x)), float(np.nanmax(x))] if np.isfinite(x).any() else [None, None]}
        for t in TARGETS:
            y = np.array([r["downstream"].get(t, np.nan) for r in recs], dtype=float)
            fit, rank = least_squares(x, y), spearman(x, y)
            row[t] = {"slope": fit["slope"], "per_step": fit["slope"] * STEP * direction, "r2": fit["r2"],
                      "spearman": rank["rho"], "spearman_p": rank["p_value"],
                      "oriented_spearman": rank["rho"] * direction if np.isfinite(rank["rho"]) else float("nan")}
        rates[m] = row

    def score(m):
        a = rates[m]["auc"]
        rho, r2 = a["oriented_spearman"], a["r2"]
        return (rho if np.isfinite(rho) else -math.inf, r2 if np.isfinite(r2) else -math.inf)

    ranking = sorted(rates, key=score, reverse=True)
    best = ranking[0] if ranking else None
    verdict = "too few variants with downstream results to compare metrics"
    if best is not None and len(recs) >= 3:
        a = rates[best]["auc"]
        if not np.isfinite(a["oriented_spearman"]) or a["oriented_spearman"] <= 0:
            verdict = (f"no intermediate metric moves with downstream AUC across these {len(recs)} variants "
                       f"(best oriented Spearman {a['oriented_spearman']:.2f}); do not pick a metric from this run")
        else:
            sign = "+" if rates[best]["direction"] > 0 else "-"
            verdict = (f"{rates[best]['name']} ({best}) predicts downstream AUC best: Spearman "
                       f"{a['spearman']:+.2f} (p={a['spearman_p']:.2g}), slope R^2 {a['r2']:.2f}, "
                       f"{a['per_step'] * 100:+.2f} AUC points per {sign}{STEP} of {best}, across {len(recs)} variants")
            if a["spearman_p"] > 0.05:
                verdict += " (not significant at p < 0.05: treat as a hint)"
    best_by = {}
    for t in TARGETS:
        scored = [(rates[m][t]["oriented_spearman"], m) for m in rates if np.isfinite(rates[m][t]["oriented_spearman"])]
        best_by[t] = max(scored)[1] if scored else None
    if best is not None and len(recs) >= 3 and best_by["gauc"] not in (None, best):
        verdict += (f"; on GAUC, {best_by['gauc']} ranks best (Spearman "
                    f"{rates[best_by['gauc']]['gauc']['spearman']:+.2f})")
    lifts = []
    for r in recs:
        d = r["downstream"]
        lifts.append({"key": r["key"], **{f"{t}_lift": d.get(t, np.nan) - base.get(t, np.nan) for t in TARGETS}})
    return {"metric_k": k, "n_variants": len(recs), "baseline": base, "rates": rates, "ranking": ranking,
            "best": best, "best_by_target": best_by, "verdict": verdict, "lifts": lifts}


# -- outputs -----------------------------------------------------------------------------------
def plot_exchange_rates(records: list[dict], analysis: dict, out_dir: Path) -> list[Path]:
    recs = [r for r in records if "downstream" in r]
    base = analysis["baseline"]
    paths = []
    for m, row in analysis["rates"].items():
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        x = np.array([r["metrics"].get(m, np.nan) for r in recs], dtype=float)
        for ax, t in zip(axes, ("auc", "gauc")):
            y = np.array([r["downstream"][t] for r in recs], dtype=float)
            colours = ["tab:orange" if r["variant"].get("posttrain") else "tab:blue" for r in recs]
            ax.scatter(x, y, c=colours, zorder=3)
            for xi, yi, r in zip(x, y, recs):
                ax.annotate(r["key"], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
            fit = row[t]
            if np.isfinite(fit["slope"]):
                xs = np.linspace(np.nanmin(x), np.nanmax(x), 10)
                line = least_squares(x, y)
                ax.plot(xs, line["slope"] * xs + line["intercept"], "k--", lw=1)
            if t in base and np.isfinite(base[t]):
                ax.axhline(base[t], color="grey", lw=1, ls=":", label=f"DIN ids-only {base[t]:.4f}")
                ax.legend(fontsize=7, loc="lower right")
            ax.set_xlabel(f"{m} ({'higher' if row['direction'] > 0 else 'lower'} is better)")
            ax.set_ylabel(f"DIN + embeddings test {t.upper()}")
            ax.set_title(f"{t.upper()}: slope {fit['slope']:+.3g}, Spearman {fit['spearman']:+.2f}, "
                         f"R² {fit['r2']:.2f}", fontsize=9)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Exchange rate of {row['name']} (blue: pretraining only, orange: post-trained)", fontsize=10)
        fig.tight_layout()
        p = out_dir / f"exchange_rate_{m.replace('@', '_at_')}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    # summary: oriented Spearman per metric and target
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ms = list(analysis["rates"])
    w = 0.8 / len(TARGETS)
    for i, t in enumerate(TARGETS):
        vals = [analysis["rates"][m][t]["oriented_spearman"] for m in ms]
        bars = ax.bar(np.arange(len(ms)) + i * w, np.nan_to_num(vals), w, label=t.upper())
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(np.arange(len(ms)) + w, ms, fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("Spearman rho (higher metric = better)")
    ax.set_title("Which intermediate metric predicts downstream gains", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out_dir / "exchange_rate_summary.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return [p] + paths


def _f(v, digits=4) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def markdown(records: list[dict], analysis: dict, figures: list[Path], out_dir: Path) -> str:
    k = analysis["metric_k"]
    base = analysis["baseline"]
    lines = ["# Exchange rate of intermediate metrics", "", f"**Verdict:** {analysis['verdict']}.", "",
             f"DIN ids-only (same run, same recipe): test AUC {_f(base.get('auc'))}, GAUC {_f(base.get('gauc'))}, "
             f"cold-item AUC {_f(base.get('cold_auc'))}.", "",
             "| variant | post-trained | epoch | dim | " + " | ".join(metric_names(k))
             + " | AUC | GAUC | cold AUC | AUC lift | cost (s) |",
             "|---|---|---|---|" + "---|" * (len(metric_names(k)) + 5)]
    for r in records:
        if "downstream" not in r:
            continue
        v, m, d = r["variant"], r["metrics"], r["downstream"]
        cost = sum(r.get("cost", {}).values())
        lines.append(f"| {r['key']} | {'yes' if v.get('posttrain') else 'no'} | {v.get('epoch')} | {m['dim']} | "
                     + " | ".join(_f(m.get(n), 3) for n in metric_names(k))
                     + f" | {_f(d['auc'])} | {_f(d['gauc'])} | {_f(d['cold_auc'])} | "
                       f"{d['auc'] - base.get('auc', np.nan):+.4f} | {cost:.0f} |")
    lines += ["", "Cost = encoder training up to the snapshot (shared by the variants of one snapshot) + metrics "
              "+ DIN training, wall seconds.", "",
              "| intermediate metric | range over variants | exchange rate (AUC points per 0.1) | R² "
              "| Spearman AUC (p) "
              "| Spearman GAUC | Spearman cold AUC |", "|---|---|---|---|---|---|---|"]
    for m in analysis["ranking"]:
        row = analysis["rates"][m]
        a, g, c = row["auc"], row["gauc"], row["cold_auc"]
        sign = "+" if row["direction"] > 0 else "-"
        lo, hi = row["range"]
        lines.append(f"| {m} ({row['name']}) | {_f(lo, 3)} - {_f(hi, 3)} | "
                     f"{a['per_step'] * 100:+.3f} per {sign}0.1 | {_f(a['r2'], 2)} | "
                     f"{_f(a['spearman'], 2)} ({_f(a['spearman_p'], 3)}) | {_f(g['spearman'], 2)} | "
                     f"{_f(c['spearman'], 2)} |")
    lines += ["", "Rows are ranked by Spearman rho with AUC, oriented so that a better metric value counts as "
              "positive (alignment loss: lower is better). An exchange rate is only as good as the metric's range: "
              "a slope over a range much smaller than 0.1 is an extrapolation.", ""]
    lines += [f"![{p.stem}]({p.relative_to(out_dir)})" for p in figures]
    return "\n".join(lines) + "\n"


def run_exchange_rate(run_dir, preset="tiny", data=None, threads: int = 1, progress: bool = True,
                      command: str | None = None, session: LabSession | None = None) -> dict:
    """Compute (or resume) every variant point, then write exchange_rate.{json,md,png}."""
    s = session or LabSession(run_dir, preset, data, threads, progress, command)
    baseline = s.baseline()
    variants = s.variants()
    records = []
    bar = tqdm(variants, desc="exchange-rate variants", unit="variant", disable=not progress)
    for v in bar:
        bar.set_postfix_str(v["key"])
        records.append(s.variant_point(v))
    return write_exchange_rate(s.run.root, records, baseline, s.preset.metric_k)


def write_exchange_rate(run_dir: Path, records: list[dict], baseline: dict, k: int) -> dict:
    run_dir = Path(run_dir)
    analysis = analyse(records, baseline, k)
    figures = plot_exchange_rates(records, analysis, run_dir)
    result = {**analysis, "variants": [{k2: r[k2] for k2 in ("key", "variant", "metrics", "downstream", "cost",
                                                             "seconds") if k2 in r} for r in records],
              "figures": [p.name for p in figures]}
    write_json(run_dir / "exchange_rate.json", result)
    (run_dir / "exchange_rate.md").write_text(markdown(records, analysis, figures, run_dir))
    print(f"exchange rate ({len(records)} variants): {analysis['verdict']} -> {run_dir / 'exchange_rate.md'}")
    return result


def load_exchange_rate(run_dir) -> dict | None:
    p = Path(run_dir) / "exchange_rate.json"
    return read_json(p) if p.exists() else None


__all__ = ["run_exchange_rate", "analyse", "write_exchange_rate", "load_exchange_rate", "metric_names",
           "VARIANTS", "BASELINES"]
